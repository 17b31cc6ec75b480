package appspec

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func validApp() *App {
	a := Defaults()
	a.ID = "/prod/shop/web"
	a.Container = &Container{Type: "DOCKER", Docker: &Docker{Image: "nginx:1.25"}}
	a.PortDefinitions = []PortDefinition{{Port: 0, Name: "http"}, {Port: 0, Name: "metrics"}}
	a.Normalize()
	return a
}

func intp(i int) *int { return &i }

// hc gives a health check built in Go the interval and timeout that JSON
// would get from Marathon's defaults (Normalize does not invent them).
func hc(h HealthCheck) HealthCheck {
	h.IntervalSeconds, h.TimeoutSeconds = DefaultHealthIntervalSeconds, DefaultHealthTimeoutSeconds
	return h
}
func u32p(u uint32) *uint32      { return &u }
func ext(vh ...string) *Exposure { return &Exposure{Mode: ExposureExternal, VHosts: vh} }

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(a *App)
		path   string // "" means valid
		substr string
	}{
		{"baseline is valid", func(a *App) {}, "", ""},
		{"relative id is fine", func(a *App) { a.ID = "web" }, "", ""},
		{"dotted id segment", func(a *App) { a.ID = "/prod/shop.v2/web" }, "", ""},
		{"uppercase id", func(a *App) { a.ID = "/Prod/web" }, "/id", `segment "Prod" is invalid`},
		{"underscore id", func(a *App) { a.ID = "/prod/my_web" }, "/id", `segment "my_web"`},
		{"dash at end", func(a *App) { a.ID = "/web-" }, "/id", `segment "web-"`},
		{"empty id", func(a *App) { a.ID = "" }, "/id", "must not be empty"},
		{"root id", func(a *App) { a.ID = "/" }, "/id", "root group"},
		{"zero cpus", func(a *App) { a.CPUs = 0 }, "/cpus", "greater than 0"},
		{"negative mem", func(a *App) { a.Mem = -1 }, "/mem", "0 or more"},
		{"negative disk", func(a *App) { a.Disk = -0.5 }, "/disk", "0 or more"},
		{"negative gpus", func(a *App) { a.GPUs = -1 }, "/gpus", "0 or more"},
		{"negative instances", func(a *App) { a.Instances = -1 }, "/instances", "0 or more"},
		{"zero instances is fine", func(a *App) { a.Instances = 0 }, "", ""},
		{"cmd and args", func(a *App) { a.Cmd = "x"; a.Args = []string{"y"} }, "/", "both 'cmd' and 'args'"},
		{"nothing to run", func(a *App) { a.Container = nil }, "/", "one of 'cmd' or 'args'"},
		{"docker without image", func(a *App) { a.Container.Docker.Image = " " }, "/container/docker/image", "needs an image"},
		{"unknown container type", func(a *App) { a.Container.Type = "RKT" }, "/container/type", "DOCKER or MESOS"},
		{"mesos container with docker image", func(a *App) { a.Container.Type = "MESOS" }, "", ""},
		{"empty docker parameter key", func(a *App) { a.Container.Docker.Parameters = []DockerParam{{Value: "v"}} }, "/container/docker/parameters/0/key", "must not be empty"},
		{"duplicate ports", func(a *App) { a.PortDefinitions[0].Port = 8080; a.PortDefinitions[1].Port = 8080 }, "/portDefinitions", "Ports must be unique"},
		{"duplicate port names", func(a *App) { a.PortDefinitions[1].Name = "http" }, "/portDefinitions", "Port names must be unique"},
		{"bad port name", func(a *App) { a.PortDefinitions[0].Name = "HTTP_1" }, "/portDefinitions/0/name", "lowercase"},
		{"port out of range", func(a *App) { a.PortDefinitions[0].Port = 70000 }, "/portDefinitions/0/port", "1 to 65535"},
		{"bad protocol", func(a *App) { a.PortDefinitions[0].Protocol = "sctp" }, "/portDefinitions/0/protocol", "tcp, udp"},
		{"requirePorts with a dynamic port is accepted as in Marathon", func(a *App) { a.RequirePorts = true }, "", ""},
		{"env name", func(a *App) { a.Env = map[string]EnvValue{"1BAD": {Value: "x"}} }, "/env/1BAD", "do not start with a digit"},
		{"env secret not defined", func(a *App) { a.Env = map[string]EnvValue{"P": {Secret: "db"}} }, "/env/P", `secret "db", which is not defined`},
		{"secret without field", func(a *App) {
			a.Env = map[string]EnvValue{"P": {Secret: "db"}}
			a.Secrets = map[string]Secret{"db": {Source: "secret/db#"}}
		}, "/secrets/db/source", "has no field"},
		{"secret without path", func(a *App) { a.Secrets = map[string]Secret{"db": {Source: "#password"}} }, "/secrets/db/source", "has no path"},
		{"secret ok", func(a *App) {
			a.Env = map[string]EnvValue{"P": {Secret: "db"}}
			a.Secrets = map[string]Secret{"db": {Source: "secret/db#password"}}
		}, "", ""},
		{"unknown operator", func(a *App) { a.Constraints = [][]string{{"hostname", "NEAR"}} }, "/constraints/0", `operator "NEAR"`},
		{"constraint arity", func(a *App) { a.Constraints = [][]string{{"hostname"}} }, "/constraints/0", "[field, operator]"},
		{"UNIQUE with value", func(a *App) { a.Constraints = [][]string{{"hostname", "UNIQUE", "x"}} }, "/constraints/0", "takes no value"},
		{"LIKE without value", func(a *App) { a.Constraints = [][]string{{"rack", "LIKE"}} }, "/constraints/0", "needs a regular expression"},
		{"LIKE bad regex", func(a *App) { a.Constraints = [][]string{{"rack", "LIKE", "rack-[1-"}} }, "/constraints/0", "not a valid regular expression"},
		{"MAX_PER not a number", func(a *App) { a.Constraints = [][]string{{"rack", "MAX_PER", "two"}} }, "/constraints/0", "positive integer"},
		{"GROUP_BY zero", func(a *App) { a.Constraints = [][]string{{"rack", "GROUP_BY", "0"}} }, "/constraints/0", "positive integer"},
		{"IS without value", func(a *App) { a.Constraints = [][]string{{"os", "IS"}} }, "/constraints/0", "IS needs a value"},
		{"IS with value", func(a *App) { a.Constraints = [][]string{{"os", "IS", "linux"}} }, "", ""},
		{"health protocol", func(a *App) { a.HealthChecks = []HealthCheck{hc(HealthCheck{Protocol: "UDP"})} }, "/healthChecks/0/protocol", "must be one of"},
		{"health portIndex beyond ports", func(a *App) {
			a.HealthChecks = []HealthCheck{hc(HealthCheck{Protocol: "HTTP", Path: "/", PortIndex: intp(2)})}
		}, "/healthChecks/0/portIndex", "one of the app's 2 ports"},
		{"health port and portIndex", func(a *App) {
			a.HealthChecks = []HealthCheck{hc(HealthCheck{Protocol: "TCP", PortIndex: intp(0), Port: u32p(80)})}
		}, "/healthChecks/0", "not both"},
		{"command check without command", func(a *App) { a.HealthChecks = []HealthCheck{hc(HealthCheck{Protocol: "COMMAND"})} }, "/healthChecks/0/command", "needs"},
		{"http check path", func(a *App) {
			a.HealthChecks = []HealthCheck{hc(HealthCheck{Protocol: "MESOS_HTTP", Path: "health", PortIndex: intp(1)})}
		}, "/healthChecks/0/path", "must start with /"},
		{"two Mesos health checks", func(a *App) {
			a.HealthChecks = []HealthCheck{hc(HealthCheck{Protocol: "MESOS_TCP", PortIndex: intp(0)}), hc(HealthCheck{Protocol: "HTTP", Path: "/", PortIndex: intp(0)}),
				hc(HealthCheck{Protocol: "COMMAND", Command: &CommandCheck{Value: "true"}})}
		}, "/healthChecks/2/protocol", "at most one Mesos health check"},
		{"health on an app without ports", func(a *App) {
			a.PortDefinitions = []PortDefinition{}
			a.HealthChecks = []HealthCheck{hc(HealthCheck{Protocol: "TCP"})}
			a.Normalize()
		}, "/healthChecks/0/portIndex", "one of the app's 0 ports"},
		{"readiness portName missing", func(a *App) { a.ReadinessChecks = []ReadinessCheck{{}}; a.Normalize() }, "/readinessChecks/0/portName", `no port named "http-api"`},
		{"readiness timeout ≥ interval", func(a *App) {
			a.ReadinessChecks = []ReadinessCheck{{PortName: "http", IntervalSeconds: 5, TimeoutSeconds: 5}}
			a.Normalize()
		}, "/readinessChecks/0/timeoutSeconds", "smaller than intervalSeconds"},
		{"readiness status code", func(a *App) {
			a.ReadinessChecks = []ReadinessCheck{{PortName: "http", HTTPStatusCodesForReady: []int{42}}}
			a.Normalize()
		}, "/readinessChecks/0/httpStatusCodesForReady/0", "100 to 999"},
		{"minimumHealthCapacity above 1", func(a *App) { a.UpgradeStrategy.MinimumHealthCapacity = 1.5 }, "/upgradeStrategy/minimumHealthCapacity", "between 0 and 1"},
		{"maximumOverCapacity below 0", func(a *App) { a.UpgradeStrategy.MaximumOverCapacity = -0.1 }, "/upgradeStrategy/maximumOverCapacity", "between 0 and 1"},
		{"expunge before inactive", func(a *App) { a.UnreachableStrategy.ExpungeAfterSeconds = 10 }, "/unreachableStrategy/expungeAfterSeconds", "not be smaller"},
		{"backoff factor below 1", func(a *App) { a.BackoffFactor = 0.5 }, "/backoffFactor", "1 or more"},
		{"kill selection", func(a *App) { a.KillSelection = "RANDOM" }, "/killSelection", "YOUNGEST_FIRST or OLDEST_FIRST"},
		{"negative progress deadline", func(a *App) { a.ProgressDeadlineSeconds = -1 }, "/progressDeadlineSeconds", "0 or more"},
		{"exposure mode", func(a *App) { a.Exposure = &Exposure{Mode: "public"} }, "/exposure/mode", "internal or external"},
		{"external with path only", func(a *App) { a.Exposure = &Exposure{Mode: ExposureExternal, Paths: []string{"/shop"}} }, "", ""},
		{"bad vhost", func(a *App) { a.Exposure = ext("shop_example.com") }, "/exposure/vhosts/0", "not a valid host name"},
		{"wildcard vhost", func(a *App) { a.Exposure = ext("*.shop.example.com") }, "", ""},
		{"exposure path", func(a *App) { a.Exposure = &Exposure{Mode: ExposureExternal, Paths: []string{"shop"}} }, "/exposure/paths/0", "must start with /"},
		{"marathon-lb bad vhost", func(a *App) {
			a.Labels = map[string]string{"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "ok.example.com,Bad Host"}
		}, "/labels/HAPROXY_0_VHOST/1", "not a valid host name"},
		{"marathon-lb external without vhost is served on its service port", func(a *App) { a.Labels = map[string]string{"HAPROXY_GROUP": "external"} }, "", ""},
		{"marathon-lb every implemented label on port 1", func(a *App) {
			a.Labels = map[string]string{"HAPROXY_1_VHOST": "m.example.com", "HAPROXY_1_PATH": "/a /b", "HAPROXY_1_GROUP": "external,int", "HAPROXY_1_PORT": "15000", "HAPROXY_1_MODE": "HTTP", "HAPROXY_1_BALANCE": "leastconn", "HAPROXY_1_STICKY": "true", "HAPROXY_1_REDIRECT_TO_HTTPS": "false", "HAPROXY_1_USE_HSTS": "yes", "HAPROXY_1_SSL_CERT": "/etc/ssl/m.pem", "HAPROXY_1_BACKEND_WEIGHT": "-2", "HAPROXY_1_ENABLED": "true", "HAPROXY_1_BACKEND_HEALTHCHECK_PORT_INDEX": "0"}
		}, "", ""},
		{"marathon-lb template label refused", func(a *App) { a.Labels = map[string]string{"HAPROXY_0_FRONTEND_HEAD": "x"} }, "/labels/HAPROXY_0_FRONTEND_HEAD", "config template"},
		{"marathon-lb global template refused", func(a *App) { a.Labels = map[string]string{"HAPROXY_HTTP_FRONTEND_HEAD": "x"} }, "/labels/HAPROXY_HTTP_FRONTEND_HEAD", "config template"},
		{"marathon-lb acl refused", func(a *App) { a.Labels = map[string]string{"HAPROXY_1_HTTP_FRONTEND_ACL": "x"} }, "/labels/HAPROXY_1_HTTP_FRONTEND_ACL", "config template"},
		{"marathon-lb auth refused", func(a *App) { a.Labels = map[string]string{"HAPROXY_0_AUTH": "realm:user:pw"} }, "/labels/HAPROXY_0_AUTH", "basic auth"},
		{"marathon-lb bind addr refused", func(a *App) { a.Labels = map[string]string{"HAPROXY_0_BIND_ADDR": "10.0.0.1"} }, "/labels/HAPROXY_0_BIND_ADDR", "listener addresses"},
		{"marathon-lb proxypass refused", func(a *App) { a.Labels = map[string]string{"HAPROXY_0_HTTP_BACKEND_PROXYPASS_PATH": "/x"} }, "/labels/HAPROXY_0_HTTP_BACKEND_PROXYPASS_PATH", "rewriting"},
		{"marathon-lb deployment group refused", func(a *App) { a.Labels = map[string]string{"HAPROXY_DEPLOYMENT_GROUP": "shop"} }, "/labels/HAPROXY_DEPLOYMENT_GROUP", "blue/green"},
		{"marathon-lb mode", func(a *App) { a.Labels = map[string]string{"HAPROXY_1_MODE": "udp"} }, "/labels/HAPROXY_1_MODE", "http or tcp"},
		{"marathon-lb balance", func(a *App) { a.Labels = map[string]string{"HAPROXY_1_BALANCE": "random"} }, "/labels/HAPROXY_1_BALANCE", "roundrobin, leastconn or source"},
		{"marathon-lb boolean", func(a *App) { a.Labels = map[string]string{"HAPROXY_1_STICKY": "maybe"} }, "/labels/HAPROXY_1_STICKY", "true or false"},
		{"marathon-lb port", func(a *App) { a.Labels = map[string]string{"HAPROXY_1_PORT": "70000"} }, "/labels/HAPROXY_1_PORT", "1 to 65535"},
		{"marathon-lb port index beyond the ports", func(a *App) { a.Labels = map[string]string{"HAPROXY_5_VHOST": "x.example.com"} }, "/labels/HAPROXY_5_VHOST", "not one of the app's 2 ports"},
		{"marathon-lb path needs a vhost", func(a *App) { a.Labels = map[string]string{"HAPROXY_1_PATH": "/x"} }, "/labels/HAPROXY_1_PATH", "needs a vhost"},
		{"marathon-lb path flag", func(a *App) {
			a.Labels = map[string]string{"HAPROXY_1_VHOST": "x.example.com", "HAPROXY_1_PATH": "-i /x"}
		}, "/labels/HAPROXY_1_PATH/0", "-i are not supported"},
		{"marathon-lb cert path", func(a *App) { a.Labels = map[string]string{"HAPROXY_1_SSL_CERT": "cert.pem"} }, "/labels/HAPROXY_1_SSL_CERT", "absolute path"},
		{"marathon-lb weight", func(a *App) { a.Labels = map[string]string{"HAPROXY_1_BACKEND_WEIGHT": "heavy"} }, "/labels/HAPROXY_1_BACKEND_WEIGHT", "whole number"},
		{"marathon-lb health check port index", func(a *App) { a.Labels = map[string]string{"HAPROXY_1_BACKEND_HEALTHCHECK_PORT_INDEX": "2"} }, "/labels/HAPROXY_1_BACKEND_HEALTHCHECK_PORT_INDEX", "one of the app's 2 ports"},
		{"marathon-lb group empty", func(a *App) { a.Labels = map[string]string{"HAPROXY_1_GROUP": " , "} }, "/labels/HAPROXY_1_GROUP", "at least one group"},
		{"exposure field and first port's vhost label", func(a *App) {
			a.Exposure = ext("a.example.com")
			a.Labels = map[string]string{"HAPROXY_0_VHOST": "b.example.com"}
		}, "/labels/HAPROXY_0_VHOST", "use one or the other"},
		{"autoscale min above max", func(a *App) { a.Autoscale = &Autoscale{Min: 5, Max: 2, Metric: "cpu", Target: 0.5} }, "/autoscale/max", "at least min"},
		{"autoscale metric", func(a *App) { a.Autoscale = &Autoscale{Min: 1, Max: 2, Metric: "latency", Target: 0.5} }, "/autoscale/metric", "cpu, mem, rps, prometheus"},
		{"autoscale target", func(a *App) { a.Autoscale = &Autoscale{Min: 1, Max: 2, Metric: "rps", Target: 0} }, "/autoscale/target", "greater than 0"},
		{"autoscale window", func(a *App) {
			a.Autoscale = &Autoscale{Min: 1, Max: 2, Metric: "mem", Target: 0.8, ScaleDownWindowSeconds: -1}
		}, "/autoscale/scaleDownWindowSeconds", "0 or more"},
		{"prometheus metric needs its block", func(a *App) { a.Autoscale = &Autoscale{Min: 1, Max: 2, Metric: "prometheus", Target: 100} }, "/autoscale/prometheus", "needs a prometheus block"},
		{"prometheus port index", func(a *App) {
			a.Autoscale = &Autoscale{Min: 1, Max: 2, Metric: "prometheus", Target: 100, Prometheus: &PromMetric{Name: "q", PortIndex: 2}}
		}, "/autoscale/prometheus/portIndex", "one of the app's 2 ports"},
		{"prometheus ok", func(a *App) {
			a.Autoscale = &Autoscale{Min: 0, Max: 10, Metric: "prometheus", Target: 100, Prometheus: &PromMetric{Name: "queue_depth", PortIndex: 1, Path: "/metrics"}}
		}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := validApp()
			tc.mutate(a)
			err := a.Validate()
			if tc.path == "" {
				if err != nil {
					t.Fatalf("valid app refused: %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error = %v, want a *ValidationError", err)
			}
			if errors.Is(err, ErrMalformed) {
				t.Error("a validation error claims to be malformed JSON")
			}
			if verr.Message != "Object is not valid" || len(verr.Details) != 1 {
				t.Fatalf("want one detail, got %q %+v", verr.Message, verr.Details)
			}
			d := verr.Details[0]
			if d.Path != tc.path || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], tc.substr) {
				t.Fatalf("detail = %s %q, want %s containing %q", d.Path, d.Errors, tc.path, tc.substr)
			}
		})
	}
}

// Every problem is reported at once, in Marathon's JSON shape.
func TestValidateReportsEverything(t *testing.T) {
	t.Parallel()
	a := validApp()
	a.CPUs = 0
	a.Instances = -2
	a.UpgradeStrategy.MinimumHealthCapacity = 2
	err := a.Validate()
	b, _ := json.Marshal(err)
	want := `{"message":"Object is not valid","details":[` +
		`{"path":"/cpus","errors":["must be greater than 0 (got 0); the default is 1"]},` +
		`{"path":"/instances","errors":["must be 0 or more (got -2)"]},` +
		`{"path":"/upgradeStrategy/minimumHealthCapacity","errors":["must be between 0 and 1 (got 2)"]}]}`
	if string(b) != want {
		t.Fatalf("JSON:\n got %s\nwant %s", b, want)
	}
	if got := err.Error(); !strings.HasPrefix(got, "appspec: object is not valid: /cpus: must be greater than 0") {
		t.Fatalf("Error() = %q", got)
	}
}

func TestCheckID(t *testing.T) {
	tests := []struct {
		name, id, canonical string
		ok                  bool
	}{
		{"relative", "web", "/web", true},
		{"nested", "/prod/shop/web", "/prod/shop/web", true},
		{"trailing slash", "/prod/web/", "/prod/web", true},
		{"dots resolved", "/prod/./shop/../web", "/prod/web", true},
		{"single char", "/a/b/c", "/a/b/c", true},
		{"digits", "/9/0x", "/9/0x", true},
		{"dot inside", "/a.b", "/a.b", true},
		{"double dot inside", "/a..b", "/a..b", false},
		{"leading dash", "/-web", "/-web", false},
		{"segment ending in dot", "/web.", "/web.", false},
		{"space", "/my web", "/my web", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if c := CanonicalID(tc.id); c != tc.canonical {
				t.Errorf("CanonicalID(%q) = %q, want %q", tc.id, c, tc.canonical)
			}
			if err := CheckID(tc.id); (err == nil) != tc.ok {
				t.Errorf("CheckID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
			}
		})
	}
}

// PortExposures reads every HAPROXY_{n}_* label; the mode defaults as
// marathon-lb's does: http with a vhost or an HTTP health check on the
// port (or on HAPROXY_{n}_BACKEND_HEALTHCHECK_PORT_INDEX's), else tcp.
func TestPortExposureModes(t *testing.T) {
	t.Parallel()
	a := validApp()
	a.PortDefinitions = []PortDefinition{{Port: 10000}, {Port: 10001}, {Port: 10002}, {Port: 10003}, {Port: 10004}}
	a.HealthChecks = []HealthCheck{{Protocol: "MESOS_HTTP", PortIndex: intp(1)}, {Protocol: "TCP", PortIndex: intp(2)}}
	a.Labels = map[string]string{"HAPROXY_0_VHOST": "a.example.com", "HAPROXY_3_BACKEND_HEALTHCHECK_PORT_INDEX": "1", "HAPROXY_4_MODE": "http", "HAPROXY_0_MODE": "tcp"}
	got := []string{}
	for _, pe := range a.PortExposures() {
		got = append(got, pe.Mode)
	}
	want := "tcp http tcp http http" // MODE wins; HTTP check; TCP check; check via port index; MODE
	if strings.Join(got, " ") != want {
		t.Fatalf("modes %v; want %s", got, want)
	}
}

func TestEffectiveExposure(t *testing.T) {
	tests := []struct {
		name   string
		exp    *Exposure
		labels map[string]string
		want   Exposure
	}{
		{"internal by default", nil, nil, Exposure{Mode: ExposureInternal}},
		{"explicit external", ext("a.example.com"), nil, Exposure{Mode: ExposureExternal, VHosts: []string{"a.example.com"}}},
		{"explicit wins over labels", &Exposure{Mode: ExposureInternal}, map[string]string{"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "x.com"}, Exposure{Mode: ExposureInternal}},
		{"marathon-lb external", nil, map[string]string{"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "a.example.com, b.example.com", "HAPROXY_0_PATH": "/api /v2"},
			Exposure{Mode: ExposureExternal, VHosts: []string{"a.example.com", "b.example.com"}, Paths: []string{"/api", "/v2"}}},
		{"marathon-lb group list", nil, map[string]string{"HAPROXY_GROUP": "internal,external", "HAPROXY_0_PATH": "/x"},
			Exposure{Mode: ExposureExternal, Paths: []string{"/x"}}},
		// The internal listener routes an internal app's vhosts.
		{"marathon-lb internal group", nil, map[string]string{"HAPROXY_GROUP": "internal", "HAPROXY_0_VHOST": "a.example.com"}, Exposure{Mode: ExposureInternal, VHosts: []string{"a.example.com"}}},
		{"per-port group wins", nil, map[string]string{"HAPROXY_GROUP": "internal", "HAPROXY_0_GROUP": "external"}, Exposure{Mode: ExposureExternal}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := validApp()
			a.Exposure, a.Labels = tc.exp, tc.labels
			if got := a.EffectiveExposure(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("EffectiveExposure = %+v, want %+v", got, tc.want)
			}
		})
	}
}
