package secrets

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		check   func(Config) bool
		wantErr string
		is      error
	}{
		{name: "no address", env: map[string]string{"VAULT_TOKEN": "t"}, is: ErrNotConfigured},
		{name: "token", env: map[string]string{"VAULT_ADDR": "http://v:8200", "VAULT_TOKEN": "t", "VAULT_NAMESPACE": "ns1"},
			check: func(c Config) bool { return c.Token == "t" && c.Namespace == "ns1" && c.Address == "http://v:8200" }},
		{name: "token file", env: map[string]string{"VAULT_ADDR": "http://v", "VAULT_TOKEN_FILE": "/run/tok"},
			check: func(c Config) bool { return c.TokenFile == "/run/tok" }},
		{name: "approle", env: map[string]string{"VAULT_ADDR": "http://v", "VAULT_ROLE_ID": "r", "VAULT_SECRET_ID_FILE": "/s", "VAULT_APPROLE_MOUNT": "ar"},
			check: func(c Config) bool { return c.useAppRole() && c.RoleID == "r" && c.AppRoleMount == "ar" }},
		{name: "approle without secret id", env: map[string]string{"VAULT_ADDR": "http://v", "VAULT_ROLE_ID": "r"}, wantErr: "secret_id file"},
		{name: "no credentials", env: map[string]string{"VAULT_ADDR": "http://v"}, wantErr: "no vault credentials"},
		{name: "tls and timeout", env: map[string]string{"VAULT_ADDR": "https://v", "VAULT_TOKEN": "t", "VAULT_CACERT": "/ca.pem",
			"VAULT_SKIP_VERIFY": "true", "VAULT_CLIENT_TIMEOUT": "3", "VAULT_MAX_RETRIES": "1", "VAULT_TLS_SERVER_NAME": "vault"},
			check: func(c Config) bool {
				return c.CACert == "/ca.pem" && c.Insecure && c.RequestTimeout == 3*time.Second && c.MaxRetries == 1 && c.TLSServerName == "vault"
			}},
		{name: "bad skip verify", env: map[string]string{"VAULT_ADDR": "http://v", "VAULT_TOKEN": "t", "VAULT_SKIP_VERIFY": "maybe"}, wantErr: "VAULT_SKIP_VERIFY"},
		{name: "bad timeout", env: map[string]string{"VAULT_ADDR": "http://v", "VAULT_TOKEN": "t", "VAULT_CLIENT_TIMEOUT": "soon"}, wantErr: "VAULT_CLIENT_TIMEOUT"},
		{name: "cert without key", env: map[string]string{"VAULT_ADDR": "http://v", "VAULT_TOKEN": "t", "VAULT_CLIENT_CERT": "/c"}, wantErr: "together"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ConfigFromEnv(func(k string) string { return c.env[k] })
			switch {
			case c.is != nil:
				if !errors.Is(err, c.is) {
					t.Fatalf("err = %v, want %v", err, c.is)
				}
			case c.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				if tok := c.env["VAULT_TOKEN"]; tok != "" && strings.Contains(err.Error(), "="+tok) {
					t.Fatalf("error shows the token: %v", err)
				}
			default:
				if err != nil || !c.check(cfg) {
					t.Fatalf("cfg = %+v, err = %v", cfg, err)
				}
			}
		})
	}
}
