package secrets

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrNotConfigured: Flotilla runs without Vault (VAULT_ADDR unset), so an
// app that references secrets cannot be accepted or launched.
var ErrNotConfigured = errors.New("secrets: no vault configured (set VAULT_ADDR and VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID_FILE)")

// Config says where Vault is and how Flotilla logs in. Build it by hand or
// with ConfigFromEnv.
type Config struct {
	Address       string // e.g. https://vault.service:8200
	CACert        string // PEM file to verify Vault's certificate
	CAPath        string // directory of PEM files
	ClientCert    string // PEM client certificate, with ClientKey
	ClientKey     string
	TLSServerName string
	Insecure      bool // skip certificate verification (never in production)
	Namespace     string

	// Token auth: Token, or TokenFile read at every (re-)login so a token
	// rotated by another process is picked up.
	Token     string
	TokenFile string

	// AppRole auth, used when RoleID or RoleIDFile is set. SecretIDFile is
	// read at every login, so a fresh secret_id can be dropped in place.
	AppRoleMount string // default "approle"
	RoleID       string
	RoleIDFile   string
	SecretIDFile string

	// RequestTimeout bounds every call to Vault (default 2s), so that an
	// outage turns into ErrUnavailable quickly instead of a stuck launch.
	RequestTimeout time.Duration
	// MountCacheTTL is how long a mount's KV version is remembered
	// (default 5m); mounts change rarely and detecting one costs a call.
	MountCacheTTL time.Duration
	// MaxRetries is passed to the Vault client; default 0 because callers
	// retry with their own backoff and a retry would hide an outage.
	MaxRetries int
}

func (c Config) withDefaults() Config {
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 2 * time.Second
	}
	if c.MountCacheTTL <= 0 {
		c.MountCacheTTL = 5 * time.Minute
	}
	if c.AppRoleMount == "" {
		c.AppRoleMount = "approle"
	}
	c.AppRoleMount = strings.Trim(c.AppRoleMount, "/")
	return c
}

func (c Config) useAppRole() bool { return c.RoleID != "" || c.RoleIDFile != "" }

func (c Config) validate() error {
	switch {
	case c.Address == "":
		return ErrNotConfigured
	case c.useAppRole() && c.SecretIDFile == "":
		return fmt.Errorf("secrets: approle login needs a secret_id file (VAULT_SECRET_ID_FILE)")
	case !c.useAppRole() && c.Token == "" && c.TokenFile == "":
		return fmt.Errorf("secrets: no vault credentials: set VAULT_TOKEN, VAULT_TOKEN_FILE, or VAULT_ROLE_ID with VAULT_SECRET_ID_FILE")
	case (c.ClientCert == "") != (c.ClientKey == ""):
		return fmt.Errorf("secrets: VAULT_CLIENT_CERT and VAULT_CLIENT_KEY must be set together")
	}
	return nil
}

// ConfigFromEnv reads the vault CLI's standard variables (VAULT_ADDR,
// VAULT_CACERT, VAULT_CAPATH, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY,
// VAULT_TLS_SERVER_NAME, VAULT_SKIP_VERIFY, VAULT_NAMESPACE, VAULT_TOKEN,
// VAULT_CLIENT_TIMEOUT, VAULT_MAX_RETRIES) and Flotilla's additions
// VAULT_TOKEN_FILE, VAULT_ROLE_ID, VAULT_ROLE_ID_FILE, VAULT_SECRET_ID_FILE
// and VAULT_APPROLE_MOUNT. getenv is os.Getenv outside tests. It returns
// ErrNotConfigured when VAULT_ADDR is unset.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Address:       getenv("VAULT_ADDR"),
		CACert:        getenv("VAULT_CACERT"),
		CAPath:        getenv("VAULT_CAPATH"),
		ClientCert:    getenv("VAULT_CLIENT_CERT"),
		ClientKey:     getenv("VAULT_CLIENT_KEY"),
		TLSServerName: getenv("VAULT_TLS_SERVER_NAME"),
		Namespace:     getenv("VAULT_NAMESPACE"),
		Token:         getenv("VAULT_TOKEN"),
		TokenFile:     getenv("VAULT_TOKEN_FILE"),
		AppRoleMount:  getenv("VAULT_APPROLE_MOUNT"),
		RoleID:        getenv("VAULT_ROLE_ID"),
		RoleIDFile:    getenv("VAULT_ROLE_ID_FILE"),
		SecretIDFile:  getenv("VAULT_SECRET_ID_FILE"),
	}
	if c.Address == "" {
		return Config{}, ErrNotConfigured
	}
	if v := getenv("VAULT_SKIP_VERIFY"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("secrets: VAULT_SKIP_VERIFY=%q is not a boolean", v)
		}
		c.Insecure = b
	}
	if v := getenv("VAULT_CLIENT_TIMEOUT"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return Config{}, fmt.Errorf("secrets: VAULT_CLIENT_TIMEOUT=%q is not a duration (e.g. 2s or 2)", v)
		}
		c.RequestTimeout = d
	}
	if v := getenv("VAULT_MAX_RETRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return Config{}, fmt.Errorf("secrets: VAULT_MAX_RETRIES=%q is not a count", v)
		}
		c.MaxRetries = n
	}
	if err := c.withDefaults().validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// parseDuration accepts Go durations and, like the vault CLI, bare seconds.
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}
