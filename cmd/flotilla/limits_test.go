package main

import (
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/flotilla-sched/flotilla/appspec"
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
