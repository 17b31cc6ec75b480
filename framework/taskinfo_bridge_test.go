package framework

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
)

func decodeApp(t *testing.T, body string) *appspec.App {
	t.Helper()
	a, err := appspec.Decode(strings.NewReader(body))
	if err == nil {
		err = a.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestBridgeTaskInfo: a bridge app's TaskInfo is what Marathon builds:
// BRIDGE network, one port mapping per port and protocol with the offer's
// host port, PORT* variables with host ports named after container ports,
// discovery ports with names and labels, and health checks on the
// container port (Mesos runs them inside the container's namespace).
func TestBridgeTaskInfo(t *testing.T) {
	t.Parallel()
	app := decodeApp(t, `{"id":"/shop/web","networks":[{"mode":"container/bridge"}],
		"container":{"type":"DOCKER","docker":{"image":"nginx"},"portMappings":[
			{"containerPort":80,"hostPort":0,"name":"http","labels":{"VIP_0":"web:80"}},
			{"containerPort":53,"hostPort":31053,"protocol":"udp,tcp","name":"dns"},
			{"containerPort":0,"hostPort":0}]},
		"healthChecks":[{"protocol":"MESOS_HTTP","portIndex":0,"path":"/"}]}`)
	// The fixed host port comes first from offers.Place; portsByIndex
	// puts it at index 1.
	ports := portsByIndex(app.PortList(), []uint64{31053, 31000, 31002})
	if want := []uint64{31000, 31053, 31002}; !slices.Equal(ports, want) {
		t.Fatalf("ports by index %v, want %v", ports, want)
	}
	ti := buildTaskInfo(app, launchSpec{TaskID: "t1", AgentID: "a1", Host: "h1", Ports: ports})
	d := ti.Container.GetDocker()
	if d.GetNetwork() != mesos.ContainerInfo_DockerInfo_BRIDGE {
		t.Errorf("network %v, want BRIDGE", d.GetNetwork())
	}
	var got []string
	for _, pm := range d.PortMappings {
		got = append(got, strings.Join([]string{u32(pm.HostPort), u32(pm.ContainerPort), pm.GetProtocol()}, "/"))
	}
	if want := "31000/80/tcp 31053/53/udp 31053/53/tcp 31002/31002/tcp"; strings.Join(got, " ") != want {
		t.Errorf("port mappings %v, want %s", got, want)
	}
	env := map[string]string{}
	for _, v := range ti.Command.Environment.Variables {
		env[v.Name] = v.GetValue()
	}
	for k, want := range map[string]string{"PORT0": "31000", "PORT1": "31053", "PORT2": "31002", "PORT_80": "31000", "PORT_53": "31053", "PORT_HTTP": "31000", "PORT_DNS": "31053", "PORTS": "31000,31053,31002", "HOST": "h1"} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
	if hc := ti.HealthCheck.GetHTTP(); hc == nil || hc.Port != 80 {
		t.Errorf("health check %+v, want HTTP on container port 80", ti.HealthCheck)
	}
	var disc []string
	for _, p := range ti.Discovery.GetPorts().Ports {
		disc = append(disc, u32(p.Number)+"/"+p.GetProtocol()+"/"+p.GetName()+"/"+labelString(p.Labels))
	}
	if want := "31000/tcp/http/network-scope=host,VIP_0=web:80 31053/udp/dns/network-scope=host 31053/tcp/dns/network-scope=host 31002/tcp//network-scope=host"; strings.Join(disc, " ") != want {
		t.Errorf("discovery %v\nwant %s", disc, want)
	}
	// The shared template is not written by a task's mappings.
	if tmpl := newTaskTmpl(app); len(tmpl.container.Docker.PortMappings) != 0 {
		t.Error("template got port mappings")
	}
}

func TestUserNetworkTaskInfo(t *testing.T) {
	t.Parallel()
	app := decodeApp(t, `{"id":"/db","networks":[{"mode":"container","name":"backend"}],
		"container":{"type":"DOCKER","docker":{"image":"postgres"},"portMappings":[{"containerPort":5432,"hostPort":0}]}}`)
	ti := buildTaskInfo(app, launchSpec{TaskID: "t1", AgentID: "a1", Host: "h1", Ports: []uint64{31007}})
	c := ti.Container
	if c.GetDocker().GetNetwork() != mesos.ContainerInfo_DockerInfo_USER || len(c.NetworkInfos) != 1 || c.NetworkInfos[0].GetName() != "backend" {
		t.Fatalf("container %+v", c)
	}
	if pm := c.GetDocker().PortMappings; len(pm) != 1 || pm[0].HostPort != 31007 || pm[0].ContainerPort != 5432 {
		t.Errorf("mappings %+v", pm)
	}
}

func u32(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

func labelString(l *mesos.Labels) string {
	var out []string
	for _, x := range l.GetLabels() {
		out = append(out, x.Key+"="+x.GetValue())
	}
	return strings.Join(out, ",")
}

// TestVolumesTaskInfo: host volumes reach Mesos's ContainerInfo, for a
// Docker container and for a Mesos container without an image.
func TestVolumesTaskInfo(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"id":"/v","container":{"type":"DOCKER","docker":{"image":"i"},"volumes":[{"containerPath":"/data","hostPath":"/var/data","mode":"RO"}]}}`,
		`{"id":"/v","cmd":"x","container":{"type":"MESOS","volumes":[{"containerPath":"/data","hostPath":"/var/data","mode":"RO"}]}}`,
	} {
		app := decodeApp(t, body)
		ti := buildTaskInfo(app, launchSpec{TaskID: "t", AgentID: "a", Host: "h", Ports: []uint64{31000}})
		vs := ti.Container.GetVolumes()
		if len(vs) != 1 || vs[0].ContainerPath != "/data" || vs[0].GetHostPath() != "/var/data" || vs[0].GetMode() != mesos.RO {
			t.Errorf("%s: volumes %+v", body, vs)
		}
	}
}
