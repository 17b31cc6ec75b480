package main

import (
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/flotilla-sched/flotilla/api"
	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/gateway"
)

func TestMaxInstancesFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want int
		ok   bool
	}{
		{"default", nil, appspec.DefaultMaxInstances, true},
		{"set", []string{"--max-instances", "5"}, 5, true},
		{"int32 max", []string{"--max-instances=2147483647"}, 2147483647, true},
		{"zero", []string{"--max-instances", "0"}, 0, false},
		{"negative", []string{"--max-instances", "-1"}, 0, false},
		{"past int32", []string{"--max-instances", "2147483648"}, 0, false},
		{"not a number", []string{"--max-instances", "lots"}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var c platformConfig
			commonFlags(fs, &c, "127.0.0.1:0")
			err := fs.Parse(tc.args)
			if (err == nil) != tc.ok {
				t.Fatalf("Parse(%q) = %v, want ok=%v", tc.args, err, tc.ok)
			}
			if tc.ok && c.MaxInstances != tc.want {
				t.Fatalf("MaxInstances = %d, want %d", c.MaxInstances, tc.want)
			}
		})
	}
}

// --max-instances reaches the API of a running platform: at the limit
// accepted, one past refused with 422 naming the field and the flag.
func TestDevMaxInstances(t *testing.T) {
	t.Parallel()
	env := startDev(t, devOpts{executor: "simulated", upstream: fakeUpstream(t), ports: [2]uint64{28700, 28799}, maxInstances: 2})
	code, b := env.do(t, "POST", "/v2/apps", `{"id":"/big","cmd":"sleep 100","cpus":0.01,"mem":1,"instances":3}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(b), `"path":"/instances"`) || !strings.Contains(string(b), "at most 2") ||
		!strings.Contains(string(b), "--max-instances") {
		t.Fatalf("3 instances with --max-instances 2: %d %s", code, b)
	}
	if code, b := env.do(t, "POST", "/v2/apps", `{"id":"/big","cmd":"sleep 100","cpus":0.01,"mem":1,"instances":2}`); code != http.StatusCreated {
		t.Fatalf("2 instances with --max-instances 2: %d %s", code, b)
	}
}

// With --auth-token the Mesos-DNS HTTP API that serve mounts under /v1/
// needs it too (api's route table test covers the rest); /ping does not.
func TestDevAuthCoversMounts(t *testing.T) {
	t.Parallel()
	env := startDev(t, devOpts{executor: "simulated", upstream: fakeUpstream(t), ports: [2]uint64{28800, 28899}, auth: api.Auth{Token: "t0k"}})
	get := func(path, token string) int {
		req, err := http.NewRequest(http.MethodGet, env.api+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := res.Body.Close(); err != nil {
			t.Fatal(err)
		}
		return res.StatusCode
	}
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/v1/version", "", 401}, {"/v1/version", "t0k", 200}, {"/v1/hosts/leader.mesos", "", 401},
		{"/metrics", "", 401}, {"/ping", "", 200},
	} {
		if got := get(c.path, c.token); got != c.want {
			t.Errorf("GET %s (token %q): %d, want %d", c.path, c.token, got, c.want)
		}
	}
}

func TestClientLimitFlags(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c platformConfig
	commonFlags(fs, &c, "127.0.0.1:0")
	if err := fs.Parse([]string{"--api-max-conns", "0", "--api-max-conns-per-ip=7", "--gateway-max-conns-per-ip", "0", "--gateway-read-header-timeout=3s"}); err != nil {
		t.Fatal(err)
	}
	// 0 on the command line is "no cap", which the packages read as -1.
	if c.APIClientLimits.MaxConns != -1 || c.APIClientLimits.MaxConnsPerIP != 7 || c.APIClientLimits.MaxEventStreams != api.DefaultClientLimits().MaxEventStreams {
		t.Errorf("api limits %+v", c.APIClientLimits)
	}
	if c.GatewayClients.MaxConnsPerIP != -1 || c.GatewayClients.MaxConns != gateway.DefaultMaxConns || c.GatewayClients.ReadHeaderTimeout.String() != "3s" {
		t.Errorf("gateway limits %+v", c.GatewayClients)
	}
	fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	commonFlags(fs, &c, "127.0.0.1:0")
	if err := fs.Parse([]string{"--gateway-max-conns", "-5"}); err == nil {
		t.Error("a negative cap was taken")
	}
}
