package appspec

import (
	"reflect"
	"strings"
	"testing"
)

func decodeOK(t *testing.T, body string) *App {
	t.Helper()
	a, err := Decode(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMarathonDefaults(t *testing.T) {
	t.Parallel()
	a := decodeOK(t, `{"id":"web","cmd":"x"}`)
	want := &App{
		ID: "/web", Cmd: "x", CPUs: 1, Mem: 128, Disk: 0, GPUs: 0, Instances: 1,
		Networks:        []Network{{Mode: NetworkHost}},
		PortDefinitions: []PortDefinition{{Port: 0, Protocol: "tcp"}},
		BackoffSeconds:  1, BackoffFactor: 1.15, MaxLaunchDelaySeconds: 300,
		UpgradeStrategy:     UpgradeStrategy{MinimumHealthCapacity: 1, MaximumOverCapacity: 1},
		KillSelection:       "YOUNGEST_FIRST",
		UnreachableStrategy: UnreachableStrategy{InactiveAfterSeconds: 300, ExpungeAfterSeconds: 600},
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", a, want)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestExplicitValuesBeatDefaults(t *testing.T) {
	t.Parallel()
	a := decodeOK(t, `{"id":"/web","cmd":"x","mem":0,"instances":0,"backoffSeconds":0,"portDefinitions":[],
		"upgradeStrategy":{"minimumHealthCapacity":0.5},"unreachableStrategy":{"inactiveAfterSeconds":0,"expungeAfterSeconds":0}}`)
	if a.Mem != 0 || a.Instances != 0 || a.BackoffSeconds != 0 {
		t.Errorf("explicit zeros replaced: mem %v instances %d backoff %v", a.Mem, a.Instances, a.BackoffSeconds)
	}
	if a.PortDefinitions == nil || len(a.PortDefinitions) != 0 || a.Ports() != 0 {
		t.Errorf("explicit [] ports became %+v", a.PortDefinitions)
	}
	if a.UpgradeStrategy != (UpgradeStrategy{MinimumHealthCapacity: 0.5, MaximumOverCapacity: 1}) {
		t.Errorf("partial upgradeStrategy = %+v, want the missing field defaulted", a.UpgradeStrategy)
	}
	if a.UnreachableStrategy != (UnreachableStrategy{}) {
		t.Errorf("unreachableStrategy = %+v", a.UnreachableStrategy)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestHealthCheckDefaultsPerProtocol(t *testing.T) {
	zero := 0
	tests := []struct {
		name string
		json string
		want HealthCheck
	}{
		{"no protocol is HTTP", `{}`, HealthCheck{Protocol: "HTTP", Path: "/", PortIndex: &zero, GracePeriodSeconds: 300, IntervalSeconds: 60, TimeoutSeconds: 20, MaxConsecutiveFailures: 3, DelaySeconds: 15}},
		{"MESOS_HTTPS", `{"protocol":"MESOS_HTTPS","path":"/h"}`, HealthCheck{Protocol: "MESOS_HTTPS", Path: "/h", PortIndex: &zero, GracePeriodSeconds: 300, IntervalSeconds: 60, TimeoutSeconds: 20, MaxConsecutiveFailures: 3, DelaySeconds: 15}},
		{"TCP has no path", `{"protocol":"TCP"}`, HealthCheck{Protocol: "TCP", PortIndex: &zero, GracePeriodSeconds: 300, IntervalSeconds: 60, TimeoutSeconds: 20, MaxConsecutiveFailures: 3, DelaySeconds: 15}},
		{"TCP with a fixed port gets no portIndex", `{"protocol":"MESOS_TCP","port":8080}`, HealthCheck{Protocol: "MESOS_TCP", Port: u32p(8080), GracePeriodSeconds: 300, IntervalSeconds: 60, TimeoutSeconds: 20, MaxConsecutiveFailures: 3, DelaySeconds: 15}},
		{"COMMAND has no port", `{"protocol":"COMMAND","command":{"value":"true"}}`, HealthCheck{Protocol: "COMMAND", Command: &CommandCheck{Value: "true"}, GracePeriodSeconds: 300, IntervalSeconds: 60, TimeoutSeconds: 20, MaxConsecutiveFailures: 3, DelaySeconds: 15}},
		{"explicit zeros kept", `{"protocol":"TCP","gracePeriodSeconds":0,"maxConsecutiveFailures":0,"delaySeconds":0}`, HealthCheck{Protocol: "TCP", PortIndex: &zero, IntervalSeconds: 60, TimeoutSeconds: 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := decodeOK(t, `{"id":"/a","cmd":"x","healthChecks":[`+tc.json+`]}`)
			if got := a.HealthChecks[0]; !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestReadinessDefaults(t *testing.T) {
	t.Parallel()
	a := decodeOK(t, `{"id":"/a","cmd":"x","portDefinitions":[{"port":0,"name":"http-api"}],"readinessChecks":[{}]}`)
	want := ReadinessCheck{Name: "readinessCheck", Protocol: "HTTP", Path: "/", PortName: "http-api", IntervalSeconds: 30, TimeoutSeconds: 10, HTTPStatusCodesForReady: []int{200}}
	if got := a.ReadinessChecks[0]; !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestNormalizeIdempotent(t *testing.T) {
	t.Parallel()
	a := decodeOK(t, `{"id":"prod//web/","container":{"docker":{"image":"i"}},"healthChecks":[{"protocol":"TCP"}],"exposure":{"vhosts":["a.com"]}}`)
	if a.ID != "/prod/web" || a.Exposure.Mode != ExposureInternal || a.Container.Type != "DOCKER" {
		t.Fatalf("normalized to %q %+v %+v", a.ID, a.Exposure, a.Container)
	}
	b := decodeOK(t, `{"id":"prod//web/","container":{"docker":{"image":"i"}},"healthChecks":[{"protocol":"TCP"}],"exposure":{"vhosts":["a.com"]}}`)
	b.Normalize()
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("Normalize changed a normalized app:\n%+v\n%+v", a, b)
	}
}

// Marathon's older GET answers, PUT back: UNIQUE with an empty value, and
// a bridge app whose deprecated ports repeat its mappings' service ports
// (raml-app-list.json and raml-group.json of the corpus).
func TestNormalizeMarathonExportQuirks(t *testing.T) {
	a, err := Decode(strings.NewReader(`{"id":"/reg","container":{"type":"DOCKER","docker":{"image":"registry","network":"BRIDGE",
	  "portMappings":[{"containerPort":5000,"hostPort":0,"servicePort":5000,"protocol":"tcp"}]}},
	  "ports":[5000],"constraints":[["hostname","UNIQUE",""]]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err != nil {
		t.Fatalf("refused: %v", err)
	}
	if len(a.DeprecatedPorts) != 0 || len(a.PortDefinitions) != 0 || a.Container.PortMappings[0].ServicePort != 5000 {
		t.Errorf("ports %v, portDefinitions %+v, mappings %+v", a.DeprecatedPorts, a.PortDefinitions, a.Container.PortMappings)
	}
	if len(a.Constraints[0]) != 2 {
		t.Errorf("constraint %q kept its empty value", a.Constraints[0])
	}
	// Ports that say something else than the mappings are still refused.
	b, err := Decode(strings.NewReader(`{"id":"/reg","container":{"type":"DOCKER","docker":{"image":"registry","network":"BRIDGE",
	  "portMappings":[{"containerPort":5000,"hostPort":0,"servicePort":5000}]}},"ports":[6000]}`))
	if err == nil {
		err = b.Validate()
	}
	if err == nil {
		t.Fatal("ports [6000] beside a mapping with service port 5000 accepted")
	}
}

// A GET answer writes absent collections as [] and {}; PUT back, they are
// the same (absent) configuration.
func TestNormalizeEmptyCollections(t *testing.T) {
	a, err := Decode(strings.NewReader(`{"id":"/a","cmd":"x","env":{},"secrets":{},"labels":{},"constraints":[],"healthChecks":[],"readinessChecks":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.Env != nil || a.Secrets != nil || a.Labels != nil || a.Constraints != nil || a.HealthChecks != nil || a.ReadinessChecks != nil {
		t.Errorf("empty collections kept: %+v", a)
	}
	b, err := Decode(strings.NewReader(`{"id":"/b","container":{"docker":{"image":"x"},"portMappings":[{"containerPort":80}]},
	  "networks":[{"mode":"container/bridge"}],"portDefinitions":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	if b.PortDefinitions != nil {
		t.Errorf("a bridge app's portDefinitions [] kept as %#v", b.PortDefinitions)
	}
}
