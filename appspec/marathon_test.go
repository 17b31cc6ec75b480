package appspec

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

const (
	hintSecretVolume = "not supported by Flotilla: file-based secrets are not supported; reference the secret in env ({\"secret\": …})"
)

// Marathon's own documents (../testdata/marathon/README.md) are accepted, or
// refused field by field with exactly these details.
func TestMarathonDocuments(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		malformed bool
		want      []Detail // nil: accepted
		check     func(t *testing.T, a *App)
	}{
		{name: "hello marathon", file: "basic-0.json", check: func(t *testing.T, a *App) {
			if a.ID != "/basic-0" || a.CPUs != 0.1 || a.Mem != 10 || a.Instances != 1 || a.Disk != 0 {
				t.Errorf("got %s cpus %v mem %v instances %d", a.ID, a.CPUs, a.Mem, a.Instances)
			}
			if len(a.PortDefinitions) != 1 || !reflect.DeepEqual(a.PortDefinitions[0], PortDefinition{Port: 0, Protocol: "tcp"}) {
				t.Errorf("default ports = %+v, want one dynamic tcp port", a.PortDefinitions)
			}
		}},
		{name: "fetch", file: "basic-1-fetch.json", check: func(t *testing.T, a *App) {
			// Marathon's default extract: true where the entry leaves it out.
			want := []FetchURI{{URI: "https://example.com/app/cool-script.sh", Executable: true, Extract: true}}
			if !reflect.DeepEqual(a.Fetch, want) {
				t.Errorf("fetch %+v", a.Fetch)
			}
		}},
		{name: "docker bridge", file: "basic-3-docker-bridge.json", check: func(t *testing.T, a *App) {
			// Marathon 1.5's normal form: networks, container.portMappings,
			// the legacy fields cleared, hostPort 0 kept.
			zero := uint32(0)
			want := []PortMapping{{ContainerPort: 8080, HostPort: &zero, Protocol: "tcp"}}
			if !reflect.DeepEqual(a.Networks, []Network{{Mode: NetworkBridge}}) || !reflect.DeepEqual(a.Container.PortMappings, want) ||
				a.Container.Docker.Network != "" || a.Container.Docker.PortMappings != nil || len(a.PortDefinitions) != 0 {
				t.Errorf("networks %+v, container %+v, docker %+v, portDefinitions %+v", a.Networks, a.Container.PortMappings, a.Container.Docker, a.PortDefinitions)
			}
		}},
		{name: "docker args with empty volumes", file: "inky.json", check: func(t *testing.T, a *App) {
			if a.Container.Docker.Image != "mesosphere/inky" || len(a.Args) != 1 || a.Cmd != "" {
				t.Errorf("got %+v", a.Container.Docker)
			}
		}},
		{name: "env secret without a field", file: "app-with-secrets.json", want: []Detail{
			{"/secrets/secretpassword/source", []string{`secret source "databasepassword" has no field; use "<vault path>#<field>", e.g. "databasepassword#password"`}},
		}},
		{name: "file secret", file: "app-with-file-secrets.json", want: []Detail{{"/container/volumes/0/secret", []string{hintSecretVolume}}}},
		{name: "CLUSTER with value", file: "constraints-cluster-value.json"},
		{name: "CLUSTER without value", file: "constraints-cluster-any.json"},
		{name: "CLUSTER on hostname", file: "constraints-cluster-hostname.json"},
		{name: "LIKE", file: "constraints-like.json", check: func(t *testing.T, a *App) {
			if !reflect.DeepEqual(a.Constraints, [][]string{{"rack_id", "LIKE", "rack-[1-3]"}}) || a.Instances != 3 {
				t.Errorf("constraints = %v", a.Constraints)
			}
		}},
		{name: "UNLIKE", file: "constraints-unlike.json"},
		{name: "MAX_PER", file: "constraints-max-per.json"},
		{name: "UNIQUE", file: "constraints-unique.json"},
		{name: "GROUP_BY", file: "constraints-group-by.json"},
		{name: "GROUP_BY with count", file: "constraints-group-by-3.json"},
		{name: "RAML example app", file: "raml-example-app.json", want: []Detail{
			{"/ipAddress", []string{"not supported by Flotilla: the pre-1.5 ipAddress field is not read; use networks: [{\"mode\": \"container\", \"name\": …}] with container.portMappings"}},
			{"/readinessChecks/0/interval", []string{`unknown field; did you mean "intervalSeconds"?`}},
			{"/readinessChecks/0/timeout", []string{`unknown field; did you mean "timeoutSeconds"?`}},
		}},
		{name: "RAML example app, revision with missing commas", file: "raml-example-app-aba8908.json", malformed: true, want: []Detail{
			{"/", []string{`invalid character '"' after object key:value pair (line 81, byte 1508)`}},
		}},
		{name: "health checks", file: "health-checks.json", check: func(t *testing.T, a *App) {
			if len(a.HealthChecks) != 3 {
				t.Fatalf("%d health checks", len(a.HealthChecks))
			}
			h, tcp, cmd := a.HealthChecks[0], a.HealthChecks[1], a.HealthChecks[2]
			if h.Path != "/api/health" || *h.PortIndex != 0 || h.DelaySeconds != DefaultHealthDelaySeconds {
				t.Errorf("http check = %+v", h)
			}
			if tcp.MaxConsecutiveFailures != 0 {
				t.Errorf("explicit maxConsecutiveFailures 0 became %d", tcp.MaxConsecutiveFailures)
			}
			if cmd.PortIndex != nil || cmd.Command.Value == "" {
				t.Errorf("command check = %+v", cmd)
			}
		}},
		{name: "readiness check", file: "readiness-check.json", check: func(t *testing.T, a *App) {
			if r := a.ReadinessChecks[0]; r.PortName != "http-api" || !reflect.DeepEqual(r.HTTPStatusCodesForReady, []int{200}) {
				t.Errorf("readiness = %+v", r)
			}
		}},
		{name: "host ports required", file: "ports-host.json", check: func(t *testing.T, a *App) {
			if a.Ports() != 3 || !a.RequirePorts || a.PortDefinitions[2].Port != 3000 {
				t.Errorf("ports = %+v", a.PortDefinitions)
			}
		}},
		{name: "deprecated ports", file: "ports-deprecated.json", check: func(t *testing.T, a *App) {
			// Still accepted by Marathon, so here too: the ports become
			// port definitions and the deprecated field is gone.
			if len(a.DeprecatedPorts) != 0 || len(a.PortDefinitions) != 3 || a.PortDefinitions[2].Port != 0 {
				t.Errorf("ports %v, portDefinitions %+v", a.DeprecatedPorts, a.PortDefinitions)
			}
		}},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		seen[tc.file] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := os.Open(filepath.Join("..", "testdata", "marathon", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			a, err := Decode(f)
			if err == nil {
				err = a.Validate()
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tc.check != nil {
					tc.check(t, a)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error = %v, want a *ValidationError", err)
			}
			if errors.Is(err, ErrMalformed) != tc.malformed {
				t.Errorf("errors.Is(err, ErrMalformed) = %v, want %v", !tc.malformed, tc.malformed)
			}
			if !reflect.DeepEqual(verr.Details, tc.want) {
				t.Errorf("details:\n got %q\nwant %q", verr.Details, tc.want)
			}
		})
	}
	// The other files of the corpus are checked end to end against a
	// running platform by cmd/flotilla's TestMarathonCorpus, whose
	// expectations file names every file.
}
