package localmesos

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

func multiRole(name string, roles []string, caps ...mesos.FrameworkInfo_Capability_Type) *mesos.FrameworkInfo {
	fi := &mesos.FrameworkInfo{User: "root", Name: name, Roles: roles}
	for _, c := range append([]mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_MULTI_ROLE}, caps...) {
		fi.Capabilities = append(fi.Capabilities, mesos.FrameworkInfo_Capability{Type: c})
	}
	return fi
}

// offersByAgent collects offers until one from each agent named has come.
func offersByAgent(t *testing.T, f *testFramework, agents ...string) map[string]mesos.Offer {
	t.Helper()
	got := map[string]mesos.Offer{}
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < len(agents) {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("offers from %v within 10s: got %v", agents, got)
		}
		for _, o := range f.offers(left) {
			got[o.AgentID.Value] = o
		}
	}
	return got
}

// summary renders an offer's resources as Mesos prints them, each with
// its role: "cpus(*):1 cpus(slave_public):2 ports(*):[25000-25004]".
func summary(o mesos.Offer) string {
	var parts []string
	for i := range o.Resources {
		r := &o.Resources[i]
		v := ""
		if r.Scalar != nil {
			v = strconv.FormatFloat(r.Scalar.Value, 'f', -1, 64)
		} else {
			for _, rg := range r.GetRanges().GetRange() {
				v += fmt.Sprintf("[%d-%d]", rg.Begin, rg.End)
			}
		}
		parts = append(parts, r.Name+"("+reservationRole(r)+"):"+v)
	}
	return strings.Join(parts, " ")
}

func TestReservedResourcesGoToTheirRole(t *testing.T) {
	t.Parallel()
	public := Resources{CPUs: 1, Mem: 256, Ports: []PortRange{{25000, 25004}},
		Reserved: map[string]Resources{"slave_public": {CPUs: 2, Mem: 512, Ports: []PortRange{{25005, 25009}}}}}
	plain := Resources{CPUs: 1, Mem: 256, Ports: []PortRange{{25010, 25014}}}
	m, _ := startMaster(t, Config{AgentSpecs: []AgentSpec{{Resources: &plain}, {Resources: &public}}})
	plainID, publicID := m.Agents()[0].ID, m.Agents()[1].ID

	// A framework of role "*" is offered the public agent's unreserved
	// part only.
	star := startFramework(t, m, fwOpts{info: multiRole("star", []string{"*"})})
	offs := offersByAgent(t, star, plainID, publicID)
	if got, want := summary(offs[publicID]), "cpus(*):1 mem(*):256 ports(*):[25000-25004]"; got != want {
		t.Fatalf("role * offered %q by the public agent, want %q", got, want)
	}
	// Nor can it take reserved resources it was not offered.
	tk := cmdTask("star.1", offs[publicID], "sleep 100", withRole(scalar("cpus", 1), "slave_public"), withRole(scalar("mem", 32), "slave_public"))
	if err := star.call(launch(offs[publicID], tk).With(calls.RefuseSeconds(0))); err != nil {
		t.Fatal(err)
	}
	if st := star.update(10*time.Second, "star.1", mesos.TASK_ERROR); !strings.Contains(st.GetMessage(), "more resources") {
		t.Fatalf("TASK_ERROR says %q", st.GetMessage())
	}
	star.stop()

	// A framework of role slave_public gets both parts, the reserved
	// ones with their role (Resource.role: no RESERVATION_REFINEMENT)
	// and the offer allocated to slave_public.
	pub := startFramework(t, m, fwOpts{info: multiRole("public", []string{"slave_public"})})
	offs = offersByAgent(t, pub, plainID, publicID)
	o := offs[publicID]
	if got, want := summary(o), "cpus(*):1 cpus(slave_public):2 mem(*):256 mem(slave_public):512 ports(*):[25000-25004] ports(slave_public):[25005-25009]"; got != want {
		t.Fatalf("role slave_public offered %q, want %q", got, want)
	}
	for _, r := range o.Resources {
		if r.GetAllocationInfo().GetRole() != "slave_public" || len(r.Reservations) != 0 {
			t.Fatalf("resource %s: allocation %q reservations %v; want slave_public and the pre-refinement format", r.Name, r.GetAllocationInfo().GetRole(), r.Reservations)
		}
	}
	if got := summary(offs[plainID]); got != "cpus(*):1 mem(*):256 ports(*):[25010-25014]" {
		t.Fatalf("the plain agent offered %q", got)
	}
	// 1.5 cpus fit only with the reservation.
	tk = cmdTask("pub.1", o, "sleep 100", withRole(scalar("cpus", 1.5), "slave_public"), withRole(scalar("mem", 64), "slave_public"),
		withRole(portsRes(25005, 25005), "slave_public"))
	if err := pub.call(launch(o, tk).With(calls.RefuseSeconds(0))); err != nil {
		t.Fatal(err)
	}
	// What is left of the reservation is offered again, to its role (the
	// launch took its resources at once; TASK_RUNNING may come before or
	// after this offer).
	o = offersByAgent(t, pub, publicID)[publicID]
	if got, want := summary(o), "cpus(*):1 cpus(slave_public):0.5 mem(*):256 mem(slave_public):448 ports(*):[25000-25004] ports(slave_public):[25006-25009]"; got != want {
		t.Fatalf("after the launch the public agent offers %q, want %q", got, want)
	}

	// /master/state splits the agent's resources as Mesos does.
	var st struct {
		Slaves []struct {
			ID         string                    `json:"id"`
			Resources  map[string]any            `json:"resources"`
			Unreserved map[string]any            `json:"unreserved_resources"`
			Reserved   map[string]map[string]any `json:"reserved_resources"`
		} `json:"slaves"`
	}
	if err := json.Unmarshal([]byte(getBody(t, m.URL()+"/master/state")), &st); err != nil {
		t.Fatal(err)
	}
	for _, a := range st.Slaves {
		if a.ID != publicID {
			continue
		}
		got := fmt.Sprint(a.Resources["cpus"], " ", a.Unreserved["cpus"], " ", a.Reserved["slave_public"]["cpus"], " ", a.Reserved["slave_public"]["ports"])
		if want := "3 1 2 [25005-25009]"; got != want {
			t.Fatalf("public agent in /master/state: total, unreserved, reserved cpus and reserved ports = %s, want %s", got, want)
		}
		return
	}
	t.Fatalf("no agent %s in /master/state", publicID)
}

func withRole(r mesos.Resource, role string) mesos.Resource {
	r.Role = &role
	return r
}

func TestReservationRefinementFormat(t *testing.T) {
	t.Parallel()
	s := fromConfig(Resources{CPUs: 1, Reserved: map[string]Resources{"web": {CPUs: 2}}})
	rs := s.toMesos("web", true)
	if len(rs) != 2 {
		t.Fatalf("got %d resources", len(rs))
	}
	r := rs[1] // cpus(web) sorts after cpus
	if r.Role != nil || len(r.Reservations) != 1 || r.Reservations[0].GetRole() != "web" ||
		r.Reservations[0].GetType() != mesos.Resource_ReservationInfo_STATIC {
		t.Fatalf("refined reservation = role %v reservations %v, want one STATIC entry of role web", r.Role, r.Reservations)
	}
	back, err := fromMesos(rs)
	if err != nil || !back.contains(s) || !s.contains(back) {
		t.Fatalf("a task echoing the refined format accounts as %v (%v), want %v", back, err, s)
	}
}

func TestGPUAgentsOnlyForGPUFrameworks(t *testing.T) {
	t.Parallel()
	gpu := Resources{CPUs: 2, Mem: 512, GPUs: 2, Ports: []PortRange{{25020, 25024}}}
	plain := Resources{CPUs: 1, Mem: 256, Ports: []PortRange{{25025, 25029}}}
	work := t.TempDir()
	m, _ := startMaster(t, Config{AgentSpecs: []AgentSpec{{Resources: &plain}, {Resources: &gpu}}, WorkDir: work,
		Executor: func(string) (executor.Executor, error) { return executor.NewProcess(executor.ProcessConfig{}), nil }})
	plainID, gpuID := m.Agents()[0].ID, m.Agents()[1].ID

	// Without GPU_RESOURCES: the plain agent only, round after round.
	f := startFramework(t, m, fwOpts{info: multiRole("cpu-only", []string{"*"})})
	for i := 0; i < 3; i++ {
		for _, o := range f.offers(10 * time.Second) {
			if o.AgentID.Value == gpuID {
				t.Fatalf("a framework without GPU_RESOURCES was offered the GPU agent: %s", summary(o))
			}
			if err := f.call(calls.Decline(o.ID).With(calls.RefuseSeconds(0))); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.stop()

	g := startFramework(t, m, fwOpts{info: multiRole("gpu", []string{"*"}, mesos.FrameworkInfo_Capability_GPU_RESOURCES)})
	offs := offersByAgent(t, g, plainID, gpuID)
	o := offs[gpuID]
	if !strings.Contains(summary(o), "gpus(*):2") {
		t.Fatalf("GPU agent offered %q", summary(o))
	}
	// A fraction of a GPU is invalid (Mesos's validateGpus).
	half := cmdTask("gpu.half", o, "sleep 100", scalar("cpus", 0.1), scalar("mem", 32), scalar("gpus", 0.5))
	if err := g.call(launch(o, half).With(calls.RefuseSeconds(0))); err != nil {
		t.Fatal(err)
	}
	if st := g.update(10*time.Second, "gpu.half", mesos.TASK_ERROR); !strings.Contains(st.GetMessage(), "must be an unsigned integer") {
		t.Fatalf("TASK_ERROR for half a GPU says %q", st.GetMessage())
	}
	o = offersByAgent(t, g, gpuID)[gpuID]
	// Two tasks of one GPU each see different simulated devices.
	t1 := cmdTask("gpu.1", o, `echo "$NVIDIA_VISIBLE_DEVICES" > gpus; sleep 100`, scalar("cpus", 0.5), scalar("mem", 32), scalar("gpus", 1))
	t2 := cmdTask("gpu.2", o, `echo "$NVIDIA_VISIBLE_DEVICES" > gpus; sleep 100`, scalar("cpus", 0.5), scalar("mem", 32), scalar("gpus", 1))
	if err := g.call(launch(o, t1, t2)); err != nil {
		t.Fatal(err)
	}
	running := map[string]bool{}
	for len(running) < 2 { // in either order
		st := g.next(10*time.Second, scheduler.Event_UPDATE).Update.Status
		if st.GetState() != mesos.TASK_STARTING && st.GetState() != mesos.TASK_RUNNING {
			t.Fatalf("task %s: %s %q", st.TaskID.Value, st.GetState(), st.GetMessage())
		}
		if st.GetState() == mesos.TASK_RUNNING {
			running[st.TaskID.Value] = true
		}
	}
	seen := map[string]bool{}
	for _, id := range []string{"gpu.1", "gpu.2"} {
		var b []byte
		deadline := time.Now().Add(10 * time.Second)
		for {
			matches, _ := filepath.Glob(filepath.Join(m.workDir, "slaves", gpuID, "frameworks", "*", "executors", id, "runs", "latest", "gpus"))
			if len(matches) == 1 {
				b, _ = os.ReadFile(matches[0])
				if len(b) > 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s wrote no gpus file in its sandbox (found %v)", id, matches)
			}
			time.Sleep(20 * time.Millisecond)
		}
		seen[strings.TrimSpace(string(b))] = true
	}
	if !seen["0"] || !seen["1"] {
		t.Fatalf("the two tasks saw NVIDIA_VISIBLE_DEVICES %v, want 0 and 1", seen)
	}
}
