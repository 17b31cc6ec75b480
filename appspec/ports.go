package appspec

// Network modes, with Marathon 1.5's names. The legacy
// container.docker.network values are translated into these by Normalize
// (HOST → host, BRIDGE → container/bridge, USER → container), as Marathon's
// AppNormalization does, so everything after decoding reads one form.
const (
	NetworkHost      = "host"
	NetworkBridge    = "container/bridge"
	NetworkContainer = "container"
)

// Network is one entry of Marathon's networks list.
type Network struct {
	Mode   string            `json:"mode"`
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Port is one of an app's ports, whichever form declared it: a port
// definition on host networking, or a port mapping on a bridge or container
// network. Index is the port index (PORT<Index>, portIndex in health checks,
// HAPROXY_<Index>_*), the same in both forms, so every consumer — offers,
// TaskInfo, DNS, the gateway — counts ports through this one list.
type Port struct {
	Index    int
	Name     string
	Protocol string // tcp, udp, udp,tcp
	// ContainerPort is where the task listens inside its network
	// namespace; 0 on host networking, and 0 on a bridge means "the host
	// port", as in Marathon.
	ContainerPort uint32
	// HostPort is the host port asked for: 0 for any port from the offer,
	// otherwise that port.
	HostPort uint32
	// ServicePort is the cluster-wide port the gateway and load balancers
	// serve the app on (portDefinitions[].port or portMappings[].servicePort).
	ServicePort uint32
	Labels      map[string]string
}

// NetworkMode is the app's network mode: host unless networks says
// otherwise (after Normalize, networks holds one mode only).
func (a *App) NetworkMode() string {
	for _, n := range a.Networks {
		if n.Mode != "" && n.Mode != NetworkHost {
			return n.Mode
		}
	}
	return NetworkHost
}

// NetworkName is the container network's name, or "".
func (a *App) NetworkName() string {
	for _, n := range a.Networks {
		if n.Mode == NetworkContainer {
			return n.Name
		}
	}
	return ""
}

// PortList lists the app's ports in index order.
func (a *App) PortList() []Port {
	if a.Pod != nil {
		return a.Pod.portList() // pod.go: the endpoints with a host port
	}
	if a.NetworkMode() == NetworkHost {
		out := make([]Port, len(a.PortDefinitions))
		for i, pd := range a.PortDefinitions {
			hp := uint32(0)
			if a.RequirePorts {
				hp = pd.Port
			}
			out[i] = Port{Index: i, Name: pd.Name, Protocol: protocolOrTCP(pd.Protocol), HostPort: hp, ServicePort: pd.Port, Labels: pd.Labels}
		}
		return out
	}
	var pms []PortMapping
	if a.Container != nil {
		pms = a.Container.PortMappings
	}
	out := make([]Port, len(pms))
	for i, pm := range pms {
		hp := uint32(0)
		if pm.HostPort != nil {
			hp = *pm.HostPort
		}
		out[i] = Port{Index: i, Name: pm.Name, Protocol: protocolOrTCP(pm.Protocol), ContainerPort: pm.ContainerPort, HostPort: hp, ServicePort: pm.ServicePort, Labels: pm.Labels}
	}
	return out
}

// Ports is how many host ports each task gets (PORT0 … PORTn-1).
func (a *App) Ports() int {
	if a.NetworkMode() == NetworkHost {
		return len(a.PortDefinitions)
	}
	if a.Container == nil {
		return 0
	}
	return len(a.Container.PortMappings)
}

// PortIndex returns the index of the port named name, or -1.
func (a *App) PortIndex(name string) int {
	for _, p := range a.PortList() {
		if p.Name == name {
			return p.Index
		}
	}
	return -1
}

// ServicePorts lists the service port of each port index (0 = not assigned
// yet).
func (a *App) ServicePorts() []uint32 {
	ps := a.PortList()
	out := make([]uint32, len(ps))
	for i, p := range ps {
		out[i] = p.ServicePort
	}
	return out
}

// SetServicePort records the service port of port index i, in whichever
// form declares it. The API assigns service ports (they are unique across
// apps, which one app cannot know); nothing else writes them.
func (a *App) SetServicePort(i int, port uint32) {
	if a.NetworkMode() == NetworkHost {
		if i < len(a.PortDefinitions) {
			a.PortDefinitions[i].Port = port
		}
		return
	}
	if a.Container != nil && i < len(a.Container.PortMappings) {
		a.Container.PortMappings[i].ServicePort = port
	}
}

func protocolOrTCP(p string) string {
	if p == "" {
		return "tcp"
	}
	return p
}
