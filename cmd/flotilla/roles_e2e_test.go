package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/testbed"
	"github.com/flotilla-sched/flotilla/localmesos"
)

// rolesCluster is a local master shaped like a DC/OS cluster: a private
// agent (127.0.0.1, unreserved), a public agent whose resources are all
// reserved to slave_public (127.0.0.2, as --default_role=slave_public
// makes them), and a GPU agent (127.0.0.3, two simulated GPUs). Ports
// 25100-25249 are this test's. It returns the agents' work directory.
func rolesCluster(t *testing.T, log *logrus.Logger) (*localmesos.Master, string) {
	t.Helper()
	agent := func(host string, first uint64) localmesos.AgentSpec {
		return localmesos.AgentSpec{Hostname: host, Resources: &localmesos.Resources{CPUs: 2, Mem: 1024, Disk: 1024,
			Ports: []localmesos.PortRange{{Begin: first, End: first + 49}}}}
	}
	private, public, gpu := agent("127.0.0.1", 25100), agent("127.0.0.2", 25150), agent("127.0.0.3", 25200)
	public.DefaultRole, gpu.GPUs = "slave_public", 2
	work := testbed.OpenTempDir(t) // tasks run as another user reach their sandboxes
	return startMaster(t, devOpts{executor: "process", agents: []localmesos.AgentSpec{private, public, gpu}, workDir: work}, log), work
}

// hostsOf waits until app runs n tasks and returns their hosts, sorted.
func hostsOf(t *testing.T, env *devEnv, id string, n int) []string {
	t.Helper()
	var hosts []string
	waitFor(t, 30*time.Second, id+" to run its tasks", func() bool {
		a := env.app(t, id)
		hosts = hosts[:0]
		for _, tk := range a.Tasks {
			if tk.State == "TASK_RUNNING" {
				hosts = append(hosts, tk.Host)
			}
		}
		return len(hosts) == n
	})
	sort.Strings(hosts)
	return hosts
}

// sandboxFile waits for a file a task of app wrote in its sandbox and
// returns the contents of each, one per task.
func sandboxFiles(t *testing.T, work, taskPrefix, name string, n int) []string {
	t.Helper()
	var out []string
	waitFor(t, 30*time.Second, "tasks "+taskPrefix+"* to write "+name, func() bool {
		matches, _ := filepath.Glob(filepath.Join(work, "localmesos-*", "slaves", "*", "frameworks", "*", "executors", taskPrefix+"*", "runs", "latest", name))
		out = out[:0]
		for _, f := range matches {
			if b, err := os.ReadFile(f); err == nil && len(b) > 0 {
				out = append(out, strings.TrimSpace(string(b)))
			}
		}
		return len(out) == n
	})
	sort.Strings(out)
	return out
}

func TestAcceptedResourceRolesUserAndGPUs(t *testing.T) {
	t.Parallel()
	u := testbed.User(t) // first, so it is deleted after the tasks that run as it
	log := testLog(t, nil)
	m, work := rolesCluster(t, log)
	env, _ := startPlatform(t, devOpts{role: "slave_public", roles: roleConfig{MesosUser: "root", GPUResources: true},
		upstream: fakeUpstream(t), servicePorts: [2]uint32{25400, 25499}}, m.URL(), log)
	waitLeading(t, env)

	t.Run("/v2/info", func(t *testing.T) {
		code, b := env.do(t, "GET", "/v2/info", "")
		var v struct {
			Config struct {
				Role     string   `json:"mesos_role"`
				User     string   `json:"mesos_user"`
				Features []string `json:"features"`
			} `json:"marathon_config"`
		}
		if code != http.StatusOK || json.Unmarshal(b, &v) != nil || v.Config.Role != "slave_public" || v.Config.User != "root" ||
			strings.Join(v.Config.Features, ",") != "gpu_resources" {
			t.Fatalf("/v2/info: %d %s", code, b)
		}
	})
	t.Run("slave_public apps land on the public agent only", func(t *testing.T) {
		env.deploy(t, `{"id":"/public","cmd":"sleep 1000","cpus":0.5,"mem":32,"instances":3,"acceptedResourceRoles":["slave_public"]}`)
		if got := hostsOf(t, env, "/public", 3); strings.Join(got, " ") != "127.0.0.2 127.0.0.2 127.0.0.2" {
			t.Fatalf("slave_public tasks ran on %v, want the public agent 127.0.0.2 only", got)
		}
	})
	t.Run("* apps take unreserved resources only", func(t *testing.T) {
		env.deploy(t, `{"id":"/private","cmd":"sleep 1000","cpus":0.5,"mem":32,"instances":3,"acceptedResourceRoles":["*"]}`)
		for _, h := range hostsOf(t, env, "/private", 3) {
			if h == "127.0.0.2" {
				t.Fatalf("a task accepting only unreserved resources ran on the reserved public agent")
			}
		}
	})
	t.Run("a role the framework is not subscribed with is refused", func(t *testing.T) {
		code, b := env.do(t, "POST", "/v2/apps", `{"id":"/other","cmd":"sleep 1000","acceptedResourceRoles":["batch"]}`)
		if code != http.StatusUnprocessableEntity || !strings.Contains(string(b), `"/acceptedResourceRoles"`) ||
			!strings.Contains(string(b), "acceptedResourceRoles can only contain * and slave_public") {
			t.Fatalf("POST with role batch: %d %s", code, b)
		}
		code, b = env.do(t, "POST", "/v2/apps", `{"id":"/other","cmd":"sleep 1000","role":"batch"}`)
		if code != http.StatusUnprocessableEntity || !strings.Contains(string(b), `"/role"`) {
			t.Fatalf("POST with app role batch: %d %s", code, b)
		}
	})
	t.Run("gpus", func(t *testing.T) {
		env.deploy(t, `{"id":"/cuda","cmd":"echo \"$NVIDIA_VISIBLE_DEVICES\" > gpus; sleep 1000","cpus":0.2,"mem":32,"gpus":1,"instances":2}`)
		if got := hostsOf(t, env, "/cuda", 2); strings.Join(got, " ") != "127.0.0.3 127.0.0.3" {
			t.Fatalf("GPU tasks ran on %v, want the GPU agent 127.0.0.3", got)
		}
		if got := sandboxFiles(t, work, "cuda.", "gpus", 2); strings.Join(got, " ") != "0 1" {
			t.Fatalf("the GPU tasks saw NVIDIA_VISIBLE_DEVICES %q, want one GPU each: 0 and 1", got)
		}
		code, b := env.do(t, "POST", "/v2/apps", `{"id":"/cuda-docker","gpus":1,"container":{"type":"DOCKER","docker":{"image":"flotilla/testapp:dev"}}}`)
		if code != http.StatusUnprocessableEntity || !strings.Contains(string(b), "GPU resources only work with the Mesos containerizer") {
			t.Fatalf("POST of a Docker GPU app: %d %s", code, b)
		}
	})
	t.Run("user", func(t *testing.T) {
		env.deploy(t, `{"id":"/owned","cmd":"id -un > whoami; sleep 1000","cpus":0.1,"mem":32,"user":"`+u.Username+`"}`)
		if got := sandboxFiles(t, work, "owned.", "whoami", 1); got[0] != u.Username {
			t.Fatalf("the task ran as %q, want %q", got[0], u.Username)
		}
		env.deploy(t, `{"id":"/ghost","cmd":"sleep 1000","cpus":0.1,"mem":32,"user":"no-such-user-flotilla"}`)
		waitFor(t, 30*time.Second, "the missing user's task to fail with the reason", func() bool {
			code, b := env.do(t, "GET", "/v2/apps/ghost", "")
			var v struct {
				App struct {
					LastTaskFailure *struct {
						State, Message string
					} `json:"lastTaskFailure"`
				} `json:"app"`
			}
			if code != http.StatusOK || json.Unmarshal(b, &v) != nil || v.App.LastTaskFailure == nil {
				return false
			}
			f := v.App.LastTaskFailure
			if f.State != "TASK_FAILED" || !strings.Contains(f.Message, "failed to get user information for 'no-such-user-flotilla'") {
				t.Fatalf("lastTaskFailure = %+v", f)
			}
			return true
		})
	})
}
