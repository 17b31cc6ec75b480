package appspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestNetworkForms decodes Marathon's two networking forms and checks the
// normal form Marathon itself would store and answer with.
func TestNetworkForms(t *testing.T) {
	t.Parallel()
	zero, h80 := uint32(0), uint32(80)
	tests := []struct {
		name     string
		body     string
		networks []Network
		mappings []PortMapping
		ports    []Port
	}{
		{"legacy bridge", `{"id":"a","container":{"docker":{"image":"i","network":"BRIDGE","portMappings":[{"containerPort":8080,"name":"http"}]}}}`,
			[]Network{{Mode: NetworkBridge}}, []PortMapping{{ContainerPort: 8080, HostPort: &zero, Protocol: "tcp", Name: "http"}},
			[]Port{{Index: 0, Name: "http", Protocol: "tcp", ContainerPort: 8080}}},
		{"1.5 bridge", `{"id":"a","networks":[{"mode":"container/bridge"}],"container":{"docker":{"image":"i"},"portMappings":[{"containerPort":53,"hostPort":0,"protocol":"udp,tcp","servicePort":10053},{"containerPort":80,"hostPort":80}]}}`,
			[]Network{{Mode: NetworkBridge}}, []PortMapping{{ContainerPort: 53, HostPort: &zero, Protocol: "udp,tcp", ServicePort: 10053}, {ContainerPort: 80, HostPort: &h80, Protocol: "tcp"}},
			[]Port{{Index: 0, Protocol: "udp,tcp", ContainerPort: 53, ServicePort: 10053}, {Index: 1, Protocol: "tcp", ContainerPort: 80, HostPort: 80}}},
		{"bridge without mappings gets one", `{"id":"a","networks":[{"mode":"container/bridge"}],"container":{"docker":{"image":"i"}}}`,
			[]Network{{Mode: NetworkBridge}}, []PortMapping{{HostPort: &zero, Protocol: "tcp"}},
			[]Port{{Index: 0, Protocol: "tcp"}}},
		{"plain port definitions become mappings", `{"id":"a","networks":[{"mode":"container/bridge"}],"portDefinitions":[{"port":0},{"port":0}],"container":{"docker":{"image":"i"},"portMappings":[{"containerPort":80}]}}`,
			[]Network{{Mode: NetworkBridge}}, []PortMapping{{ContainerPort: 80, HostPort: &zero, Protocol: "tcp"}, {HostPort: &zero, Protocol: "tcp"}},
			[]Port{{Index: 0, Protocol: "tcp", ContainerPort: 80}, {Index: 1, Protocol: "tcp"}}},
		{"legacy user", `{"id":"a","networks":[{"mode":"container","name":"dcos"}],"container":{"docker":{"image":"i"},"portMappings":[{"containerPort":80,"hostPort":0}]}}`,
			[]Network{{Mode: NetworkContainer, Name: "dcos"}}, []PortMapping{{ContainerPort: 80, HostPort: &zero, Protocol: "tcp"}},
			[]Port{{Index: 0, Protocol: "tcp", ContainerPort: 80}}},
		{"legacy host", `{"id":"a","container":{"docker":{"image":"i","network":"HOST"}}}`,
			[]Network{{Mode: NetworkHost}}, nil, []Port{{Index: 0, Protocol: "tcp"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Decode(strings.NewReader(tc.body))
			if err == nil {
				err = a.Validate()
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !reflect.DeepEqual(a.Networks, tc.networks) || !reflect.DeepEqual(a.Container.PortMappings, tc.mappings) {
				t.Errorf("networks %+v mappings %s, want %+v %s", a.Networks, mappingsString(a.Container.PortMappings), tc.networks, mappingsString(tc.mappings))
			}
			if got := a.PortList(); !reflect.DeepEqual(got, tc.ports) {
				t.Errorf("PortList %+v, want %+v", got, tc.ports)
			}
			if a.Container.Docker.Network != "" || a.Container.Docker.PortMappings != nil {
				t.Errorf("legacy fields left: %+v", a.Container.Docker)
			}
			// The normal form is a fixed point: what the API answers
			// decodes to the same app.
			b, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Decode(strings.NewReader(string(b)))
			if err != nil || !reflect.DeepEqual(again, a) {
				t.Errorf("round trip: %v\n%+v\n%+v", err, again, a)
			}
		})
	}
}

func mappingsString(pms []PortMapping) string {
	var b strings.Builder
	for _, pm := range pms {
		hp := "nil"
		if pm.HostPort != nil {
			hp = fmt.Sprint(*pm.HostPort)
		}
		fmt.Fprintf(&b, "{%d %s %d %s %s}", pm.ContainerPort, hp, pm.ServicePort, pm.Protocol, pm.Name)
	}
	return b.String()
}

// TestNetworkValidation: what Marathon refuses is refused with the field's
// path; what Flotilla's agents cannot run is refused with the reason.
func TestNetworkValidation(t *testing.T) {
	t.Parallel()
	docker := `"container":{"type":"DOCKER","docker":{"image":"i"%s}%s}`
	tests := []struct {
		name, body, path, substr string
	}{
		{"mapping on host networking", `{"id":"a","networks":[{"mode":"host"}],` + fmt.Sprintf(docker, "", `,"portMappings":[{"containerPort":80}]`) + `}`,
			"/container/portMappings", "portMappings are not allowed with host-networking"},
		{"legacy mapping on HOST", `{"id":"a",` + fmt.Sprintf(docker, `,"network":"HOST","portMappings":[{"containerPort":80}]`, "") + `}`,
			"/container/portMappings", "not allowed with host-networking"},
		{"containerPort out of range", `{"id":"a","networks":[{"mode":"container/bridge"}],` + fmt.Sprintf(docker, "", `,"portMappings":[{"containerPort":70000}]`) + `}`,
			"/container/portMappings/0/containerPort", "1 to 65535"},
		{"hostPort out of range", `{"id":"a","networks":[{"mode":"container/bridge"}],` + fmt.Sprintf(docker, "", `,"portMappings":[{"containerPort":80,"hostPort":65536}]`) + `}`,
			"/container/portMappings/0/hostPort", "1 to 65535"},
		{"servicePort out of range", `{"id":"a","networks":[{"mode":"container/bridge"}],` + fmt.Sprintf(docker, "", `,"portMappings":[{"containerPort":80,"servicePort":99999}]`) + `}`,
			"/container/portMappings/0/servicePort", "1 to 65535"},
		{"duplicate names", `{"id":"a","networks":[{"mode":"container/bridge"}],` + fmt.Sprintf(docker, "", `,"portMappings":[{"containerPort":80,"name":"web"},{"containerPort":81,"name":"web"}]`) + `}`,
			"/container/portMappings", "Port names must be unique"},
		{"bad protocol", `{"id":"a","networks":[{"mode":"container/bridge"}],` + fmt.Sprintf(docker, "", `,"portMappings":[{"containerPort":80,"protocol":"sctp"}]`) + `}`,
			"/container/portMappings/0/protocol", "tcp, udp"},
		{"same fixed host port twice", `{"id":"a","networks":[{"mode":"container/bridge"}],` + fmt.Sprintf(docker, "", `,"portMappings":[{"containerPort":80,"hostPort":8080},{"containerPort":81,"hostPort":8080}]`) + `}`,
			"/container/portMappings", "host port 8080/tcp is mapped twice"},
		{"NONE", `{"id":"a",` + fmt.Sprintf(docker, `,"network":"NONE"`, "") + `}`,
			"/container/docker/network", "unsupported docker network type NONE"},
		{"both network forms", `{"id":"a","networks":[{"mode":"container/bridge"}],` + fmt.Sprintf(docker, `,"network":"BRIDGE"`, "") + `}`,
			"/container/docker/network", "must not specify both container.docker.network and networks"},
		{"both mapping lists", `{"id":"a","networks":[{"mode":"container/bridge"}],` + fmt.Sprintf(docker, `,"portMappings":[{"containerPort":80}]`, `,"portMappings":[{"containerPort":81}]`) + `}`,
			"/container/docker/portMappings", "cannot specify both portMappings and docker.portMappings"},
		{"bridge with a name", `{"id":"a","networks":[{"mode":"container/bridge","name":"x"}],` + fmt.Sprintf(docker, "", "") + `}`,
			"/networks/0/name", "Bridge networks may not have names"},
		{"container network without a name", `{"id":"a","networks":[{"mode":"container"}],` + fmt.Sprintf(docker, "", `,"portMappings":[{"containerPort":80,"hostPort":0}]`) + `}`,
			"/networks/0/name", "Network name must be specified"},
		{"host and bridge", `{"id":"a","networks":[{"mode":"host"},{"mode":"container/bridge"}],` + fmt.Sprintf(docker, "", "") + `}`,
			"/networks", "May specify a single host network"},
		{"unknown mode", `{"id":"a","networks":[{"mode":"overlay"}],` + fmt.Sprintf(docker, "", "") + `}`,
			"/networks/0/mode", "must be host, container/bridge or container"},
		{"container mapping without hostPort", `{"id":"a","networks":[{"mode":"container","name":"dcos"}],` + fmt.Sprintf(docker, "", `,"portMappings":[{"containerPort":80}]`) + `}`,
			"/container/portMappings/0/hostPort", "set \"hostPort\": 0"},
		{"bridge on the Mesos containerizer", `{"id":"a","cmd":"x","networks":[{"mode":"container/bridge"}]}`,
			"/networks", "needs a DOCKER container"},
		{"named port definitions with a bridge", `{"id":"a","networks":[{"mode":"container/bridge"}],"portDefinitions":[{"port":0,"name":"web"}],` + fmt.Sprintf(docker, "", "") + `}`,
			"/portDefinitions", "only allowed with host-networking"},
		{"health check on a missing mapping", `{"id":"a","networks":[{"mode":"container/bridge"}],"healthChecks":[{"protocol":"MESOS_HTTP","portIndex":1}],` + fmt.Sprintf(docker, "", `,"portMappings":[{"containerPort":80}]`) + `}`,
			"/healthChecks/0/portIndex", "one of the app's 1 ports"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Decode(strings.NewReader(tc.body))
			if err == nil {
				err = a.Validate()
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error = %v, want a *ValidationError", err)
			}
			for _, d := range verr.Details {
				if d.Path == tc.path && len(d.Errors) > 0 && strings.Contains(strings.Join(d.Errors, " "), tc.substr) {
					return
				}
			}
			t.Fatalf("details %+v, want %s containing %q", verr.Details, tc.path, tc.substr)
		})
	}
}

// TestMarathonExportFields: fields every Marathon ≥ 1.9 export carries are
// accepted when they mean what Flotilla does, refused by name otherwise.
func TestMarathonExportFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, path string
	}{
		{"role *", `{"id":"a","cmd":"x","role":"*"}`, ""},
		{"another role", `{"id":"a","cmd":"x","role":"slave_public"}`, "/role"},
		{"ports equal to portDefinitions", `{"id":"a","cmd":"x","ports":[10001],"portDefinitions":[{"port":10001}]}`, ""},
		{"ports differing from portDefinitions", `{"id":"a","cmd":"x","ports":[10001],"portDefinitions":[{"port":10002}]}`, "/ports"},
		{"ports with a bridge", `{"id":"a","ports":[0,0],"container":{"docker":{"image":"i","network":"BRIDGE"}}}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Decode(strings.NewReader(tc.body))
			if err == nil {
				err = a.Validate()
			}
			if tc.path == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) || verr.Details[0].Path != tc.path {
				t.Fatalf("error %v, want a detail at %s", err, tc.path)
			}
		})
	}
	a, _ := Decode(strings.NewReader(`{"id":"a","ports":[0,0],"container":{"docker":{"image":"i","network":"BRIDGE"}}}`))
	if a.Ports() != 2 || a.NetworkMode() != NetworkBridge {
		t.Errorf("legacy bridge app with ports: %d ports, mode %s; want 2 mappings on the bridge", a.Ports(), a.NetworkMode())
	}
}

// TestFetchAndURIs: Marathon's deprecated uris become fetch entries,
// extracted when the name says archive; both given is refused.
func TestFetchAndURIs(t *testing.T) {
	t.Parallel()
	a, err := Decode(strings.NewReader(`{"id":"a","cmd":"x","uris":["http://h/app.tgz","http://h/run.sh?x=1"]}`))
	if err == nil {
		err = a.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	want := []FetchURI{{URI: "http://h/app.tgz", Extract: true}, {URI: "http://h/run.sh?x=1"}}
	if fmt.Sprint(a.Fetch) != fmt.Sprint(want) || a.DeprecatedURIs != nil {
		t.Errorf("fetch %+v uris %v", a.Fetch, a.DeprecatedURIs)
	}
	for body, path := range map[string]string{
		`{"id":"a","cmd":"x","uris":["u"],"fetch":[{"uri":"v"}]}`:        "/uris",
		`{"id":"a","cmd":"x","fetch":[{"uri":"v","destPath":"../etc"}]}`: "/fetch/0/destPath",
		`{"id":"a","cmd":"x","fetch":[{"uri":" "}]}`:                     "/fetch/0/uri",
	} {
		a, err := Decode(strings.NewReader(body))
		if err == nil {
			err = a.Validate()
		}
		var verr *ValidationError
		if !errors.As(err, &verr) || verr.Details[0].Path != path {
			t.Errorf("%s: %v, want a detail at %s", body, err, path)
		}
	}
}

// TestVolumes: host volumes are accepted; Marathon's other kinds are
// refused by name; bad paths and modes with the field's path.
func TestVolumes(t *testing.T) {
	t.Parallel()
	a, err := Decode(strings.NewReader(`{"id":"a","container":{"docker":{"image":"i"},"volumes":[{"containerPath":"/data","hostPath":"/var/data","mode":"RW"},{"containerPath":"conf","hostPath":"/etc/app","mode":"RO"}]}}`))
	if err == nil {
		err = a.Validate()
	}
	if err != nil || len(a.Container.Volumes) != 2 || a.Container.Volumes[1].Mode != "RO" {
		t.Fatalf("host volumes: %v %+v", err, a.Container)
	}
	for body, path := range map[string]string{
		`{"id":"a","container":{"docker":{"image":"i"},"volumes":[{"containerPath":"/d","hostPath":"rel","mode":"RW"}]}}`:        "/container/volumes/0/hostPath",
		`{"id":"a","container":{"docker":{"image":"i"},"volumes":[{"containerPath":"/d","hostPath":"/h","mode":"WO"}]}}`:         "/container/volumes/0/mode",
		`{"id":"a","container":{"docker":{"image":"i"},"volumes":[{"containerPath":"../d","hostPath":"/h","mode":"RW"}]}}`:       "/container/volumes/0/containerPath",
		`{"id":"a","container":{"docker":{"image":"i"},"volumes":[{"containerPath":"/d","external":{"name":"x"},"mode":"RW"}]}}`: "/container/volumes/0/external",
	} {
		a, err := Decode(strings.NewReader(body))
		if err == nil {
			err = a.Validate()
		}
		var verr *ValidationError
		if !errors.As(err, &verr) || verr.Details[0].Path != path {
			t.Errorf("%s: %v, want a detail at %s", body, err, path)
		}
	}
}
