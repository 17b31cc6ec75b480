package appspec

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestAssignServicePorts(t *testing.T) {
	t.Parallel()
	held := map[uint32]string{10000: "/other", 10002: "/other", 10500: "/db"}
	holder := func(p uint32) string { return held[p] }
	hostApp := func(ports ...uint32) *App {
		a := &App{ID: "/web", Cmd: "x"}
		for _, p := range ports {
			a.PortDefinitions = append(a.PortDefinitions, PortDefinition{Port: p})
		}
		a.Normalize()
		return a
	}
	bridgeApp := func(svc ...uint32) *App {
		a := &App{ID: "/web", Networks: []Network{{Mode: NetworkBridge}}, Container: &Container{Type: "DOCKER", Docker: &Docker{Image: "i"}}}
		for _, p := range svc {
			a.Container.PortMappings = append(a.Container.PortMappings, PortMapping{ContainerPort: 80, ServicePort: p})
		}
		a.Normalize()
		return a
	}
	r := PortRange{Min: 10000, Max: 10004}
	tests := []struct {
		name      string
		app, prev *App
		want      []uint32
		errPath   string
		errSubstr string
	}{
		{"lowest free ports, skipping held ones", hostApp(0, 0), nil, []uint32{10001, 10003}, "", ""},
		{"a fixed port is kept and skipped", hostApp(10001, 0), nil, []uint32{10001, 10003}, "", ""},
		{"a port outside the range is allowed", hostApp(80), nil, []uint32{80}, "", ""},
		{"bridge mappings get service ports", bridgeApp(0, 12000), nil, []uint32{10001, 12000}, "", ""},
		{"an update keeps the previous ports", hostApp(0, 0), hostApp(10004, 10003), []uint32{10004, 10003}, "", ""},
		{"a previous port now held elsewhere is replaced", hostApp(0), hostApp(10002), []uint32{10001}, "", ""},
		{"held by another app", bridgeApp(10500), nil, nil, "/container/portMappings/0/servicePort", "Requested service port 10500 conflicts with a service port in app /db"},
		{"held, host networking", hostApp(0, 10000), nil, nil, "/portDefinitions/1/port", "conflicts with a service port in app /other"},
		{"range exhausted", hostApp(0, 0, 0, 0), nil, nil, "/portDefinitions/3/port", "no free service port left in 10000-10004"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := AssignServicePorts(tc.app, tc.prev, holder, r)
			if tc.errPath != "" {
				var verr *ValidationError
				if !errors.As(err, &verr) || len(verr.Details) != 1 || verr.Details[0].Path != tc.errPath || !strings.Contains(verr.Details[0].Errors[0], tc.errSubstr) {
					t.Fatalf("error %v, want %s: %s", err, tc.errPath, tc.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.app.ServicePorts(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("service ports %v, want %v", got, tc.want)
			}
		})
	}
}
