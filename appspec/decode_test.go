package appspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		malformed bool
		want      []Detail
	}{
		{name: "unknown top-level field", body: `{"id":"/a","cmd":"x","colour":"red"}`,
			want: []Detail{{"/colour", []string{"unknown field; check the spelling (field names are case-sensitive) or remove it"}}}},
		{name: "field names are case-sensitive", body: `{"id":"/a","cmd":"x","CPUs":2}`,
			want: []Detail{{"/CPUs", []string{`unknown field; did you mean "cpus"?`}}}},
		{name: "unknown nested field", body: `{"id":"/a","container":{"docker":{"image":"x","imagee":"y"}}}`,
			want: []Detail{{"/container/docker/imagee", []string{"unknown field; check the spelling (field names are case-sensitive) or remove it"}}}},
		{name: "wrong type names the path", body: `{"id":"/a","container":{"docker":{"image":42}}}`, malformed: true,
			want: []Detail{{"/container/docker/image", []string{"expected a string, got the number 42"}}}},
		{name: "wrong types in arrays carry the index", body: `{"id":"/a","cmd":"x","healthChecks":[{},{"portIndex":"0"}],"instances":1.5}`, malformed: true,
			want: []Detail{
				{"/healthChecks/1/portIndex", []string{`expected an integer, got a string`}},
				{"/instances", []string{"expected an integer, got the number 1.5"}},
			}},
		{name: "negative port", body: `{"id":"/a","cmd":"x","portDefinitions":[{"port":-1}]}`, malformed: true,
			want: []Detail{{"/portDefinitions/0/port", []string{"expected an integer from 0 to 4294967295, got the number -1"}}}},
		{name: "env keys are escaped in the path", body: `{"id":"/a","cmd":"x","env":{"A/B":1}}`, malformed: true,
			want: []Detail{{"/env/A~1B", []string{`expected a string or {"secret": "<name>"}, got the number 1`}}}},
		{name: "env object other than a secret", body: `{"id":"/a","cmd":"x","env":{"A":{"secret":"s","extra":1}}}`, malformed: true,
			want: []Detail{{"/env/A", []string{`expected a string or {"secret": "<name>"}, got an object`}}}},
		{name: "null env value", body: `{"id":"/a","cmd":"x","env":{"A":null}}`, malformed: true,
			want: []Detail{{"/env/A", []string{`expected a string or {"secret": "<name>"}, got null`}}}},
		{name: "unsupported fields are named", body: `{"id":"/a","cmd":"x","storeUrls":["http://x/a.tgz"]}`,
			want: []Detail{
				{"/storeUrls", []string{"not supported by Flotilla: Flotilla has no artifact store"}},
			}},
		{name: "unreachableStrategy other string", body: `{"id":"/a","cmd":"x","unreachableStrategy":"never"}`, malformed: true,
			want: []Detail{{"/unreachableStrategy", []string{`expected "disabled" or an object, got the string "never"`}}}},
		{name: "not an object", body: `[1,2]`, malformed: true,
			want: []Detail{{"/", []string{"expected an object, got an array"}}}},
		{name: "empty body", body: ``, malformed: true, want: []Detail{{"/", []string{"empty body"}}}},
		{name: "truncated", body: `{"id":"/a",`, malformed: true, want: []Detail{{"/", []string{"unexpected end of input"}}}},
		{name: "two objects", body: `{"id":"/a","cmd":"x"} {}`, malformed: true,
			want: []Detail{{"/", []string{"unexpected data after the app object; send one JSON object"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode(strings.NewReader(tc.body))
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error = %v, want a *ValidationError", err)
			}
			if errors.Is(err, ErrMalformed) != tc.malformed {
				t.Errorf("malformed = %v, want %v", !tc.malformed, tc.malformed)
			}
			if !reflect.DeepEqual(verr.Details, tc.want) {
				t.Errorf("details:\n got %q\nwant %q", verr.Details, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "appspec: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, a *App)
	}{
		{"empty unsupported fields are dropped", `{"id":"a","cmd":"x","fetch":[],"dependencies":[],"ipAddress":null,"user":"","executor":"//cmd","acceptedResourceRoles":["*"],"networks":[{"mode":"host"}],"container":{"docker":{"image":"i"},"volumes":[]}}`,
			func(t *testing.T, a *App) {
				if a.ID != "/a" || a.Container.Type != "DOCKER" {
					t.Errorf("got id %q container %+v", a.ID, a.Container)
				}
			}},
		{"Marathon's status fields are dropped", `{"id":"/a","cmd":"x","tasksRunning":3,"versionInfo":{"lastScalingAt":"2026-01-01T00:00:00.000Z"},"deployments":[]}`, nil},
		{"null means default", `{"id":"/a","cmd":"x","cpus":null,"env":null}`, func(t *testing.T, a *App) {
			if a.CPUs != DefaultCPUs {
				t.Errorf("cpus = %v", a.CPUs)
			}
		}},
		{"unreachableStrategy disabled round-trips", `{"id":"/a","cmd":"x","unreachableStrategy":"disabled"}`, func(t *testing.T, a *App) {
			if !a.UnreachableStrategy.Disabled {
				t.Fatal("not disabled")
			}
			b, _ := json.Marshal(a)
			if !bytes.Contains(b, []byte(`"unreachableStrategy":"disabled"`)) {
				t.Errorf("encoded as %s", b)
			}
		}},
		{"env secret reference", `{"id":"/a","cmd":"x","env":{"P":{"secret":"db"},"Q":"plain"},"secrets":{"db":{"source":"secret/db#password"}}}`, func(t *testing.T, a *App) {
			if a.Env["P"] != (EnvValue{Secret: "db"}) || a.Env["Q"] != (EnvValue{Value: "plain"}) {
				t.Errorf("env = %+v", a.Env)
			}
			if got := a.SecretEnv(); !reflect.DeepEqual(got, map[string]string{"P": "secret/db#password"}) {
				t.Errorf("SecretEnv = %v", got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := Decode(strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Validate(); err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, a)
			}
		})
	}
}

func TestDecodeSizeLimit(t *testing.T) {
	t.Parallel()
	pad := func(n int) string {
		head := `{"id":"/a","cmd":"x","labels":{"pad":"`
		tail := `"}}`
		return head + strings.Repeat("p", n-len(head)-len(tail)) + tail
	}
	if _, err := Decode(strings.NewReader(pad(MaxBodyBytes))); err != nil {
		t.Fatalf("a body of exactly 1 MiB was refused: %v", err)
	}
	_, err := Decode(strings.NewReader(pad(MaxBodyBytes + 1)))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error = %v, want ErrTooLarge", err)
	}
}

// What Decode produces survives JSON encoding unchanged, which the store
// and the API's GET rely on.
func TestDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	body := `{"id":"/prod/shop/web","container":{"type":"DOCKER","docker":{"image":"nginx:1.25","parameters":[{"key":"label","value":"x"}]}},
	"portDefinitions":[{"port":0,"name":"http"}],"healthChecks":[{"protocol":"HTTP","gracePeriodSeconds":0}],
	"readinessChecks":[{"portName":"http"}],"env":{"S":{"secret":"s"}},"secrets":{"s":{"source":"kv/app#k"}},
	"exposure":{"mode":"external","vhosts":["shop.example.com"]},
	"autoscale":{"min":1,"max":5,"metric":"cpu","target":0.6},"unreachableStrategy":{"inactiveAfterSeconds":60,"expungeAfterSeconds":120}}`
	a, err := Decode(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if a.HealthChecks[0].GracePeriodSeconds != 0 {
		t.Errorf("explicit gracePeriodSeconds 0 became %v", a.HealthChecks[0].GracePeriodSeconds)
	}
	enc, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode(bytes.NewReader(enc))
	if err != nil {
		t.Fatalf("own encoding refused: %v\n%s", err, enc)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("round trip changed the app:\n%+v\n%+v", a, b)
	}
}

// Fields Marathon knows and Flotilla does not do are refused with the
// reason, not as unknown (app-check-http-example.json and
// apps-resource-show.json of the corpus).
func TestDecodeKnownMarathonFields(t *testing.T) {
	for _, tc := range []struct{ body, path string }{
		{`{"id":"/a","cmd":"x","check":{"http":{"portIndex":0,"path":"/"}}}`, "/check"},
		{`{"id":"/a","cmd":"x","resourceLimits":{"cpus":"unlimited"}}`, "/resourceLimits"},
		{`{"id":"/a","cmd":"x","healthChecks":[{"protocol":"HTTP","overridePort":3333}]}`, "/healthChecks/0/overridePort"},
	} {
		_, err := Decode(strings.NewReader(tc.body))
		var v *ValidationError
		if !errors.As(err, &v) || len(v.Details) != 1 || v.Details[0].Path != tc.path || !strings.HasPrefix(v.Details[0].Errors[0], "not supported by Flotilla: ") {
			t.Errorf("%s: %v, want one detail at %s saying it is not supported", tc.body, err, tc.path)
		}
	}
}

// A field one object too high is named with where it belongs
// (examples/Docker.json of the corpus).
func TestDecodeMisplacedField(t *testing.T) {
	_, err := Decode(strings.NewReader(`{"id":"/a","container":{"type":"DOCKER","docker":{"image":"x"},"forcePullImage":false}}`))
	var v *ValidationError
	want := "unknown field here; forcePullImage belongs in /container/docker"
	if !errors.As(err, &v) || len(v.Details) != 1 || v.Details[0].Path != "/container/forcePullImage" || v.Details[0].Errors[0] != want {
		t.Errorf("got %v, want /container/forcePullImage: %s", err, want)
	}
}
