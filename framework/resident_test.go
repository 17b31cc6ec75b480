package framework

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/store"
)

func residentApp(id string, n int) appspec.App {
	a := testApp(id, n)
	a.Disk = 20
	a.Container.Volumes = []appspec.Volume{{ContainerPath: "data", Mode: "RW", Persistent: &appspec.PersistentVolume{Type: "root", Size: 100}}}
	a.UpgradeStrategy = appspec.UpgradeStrategy{MinimumHealthCapacity: 0.5}
	a.UnreachableStrategy = appspec.UnreachableStrategy{Disabled: true}
	return a
}

func TestSplitTaskID(t *testing.T) {
	for id, want := range map[string]string{
		"web.instance-1234._app.1":   "web.instance-1234 1 true",
		"a_b.instance-1234._app.12":  "a_b.instance-1234 12 true",
		"web.instance-1234._app.0":   " 0 false",
		"web.instance-1234._app.01":  " 0 false",
		"web.instance-1234.nginx":    " 0 false", // a pod container's
		"web._app.1":                 " 0 false",
		"web.instance-1234._app.1x":  " 0 false",
		"web.instance-1234._app.":    " 0 false",
		"other-framework-task-1._ap": " 0 false",
	} {
		inst, n, ok := splitTaskID(id)
		if got := fmt.Sprint(inst, " ", n, " ", ok); got != want {
			t.Errorf("splitTaskID(%q) = %s, want %s", id, got, want)
		}
	}
	if app, ok := AppIDFromTaskID("prod_db.instance-1234._app.3"); !ok || app != "/prod/db" {
		t.Errorf("a relaunched resident task's app: %q %v", app, ok)
	}
	if _, _, _, ok := PodTaskID("db.instance-1234._app.3"); ok {
		t.Error("a relaunched resident task's id read as a pod container's")
	}
}

// TestPlanReservation: what a new instance reserves, creates and launches
// on, from the unreserved resources a placement took.
func TestPlanReservation(t *testing.T) {
	app := residentApp("/db", 1)
	star := "*"
	alloc := &mesos.Resource_AllocationInfo{Role: ptr("stateful")}
	placed := []mesos.Resource{
		{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 0.5}, Role: &star, AllocationInfo: alloc},
		{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 64}, Role: &star, AllocationInfo: alloc},
		{Name: "disk", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 120}, Role: &star, AllocationInfo: alloc},
		{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: 31000, End: 31000}}}, Role: &star, AllocationInfo: alloc},
	}
	nr := planReservation(&app, placed, "stateful", "flotilla", reservationLabels("fw-1", "db.instance-u1"), "db.instance-u1")
	if got, want := summarize(nr.reserve), "cpus(stateful):0.5 mem(stateful):64 ports(stateful):[31000-31000] disk(stateful):20 disk(stateful):100"; got != want {
		t.Errorf("reserve %s, want %s", got, want)
	}
	if got, want := summarize(nr.volumes), "disk(stateful):100[db#data#u1:data]"; got != want {
		t.Errorf("volumes %s, want %s", got, want)
	}
	if got, want := summarize(nr.task), "cpus(stateful):0.5 mem(stateful):64 ports(stateful):[31000-31000] disk(stateful):20 disk(stateful):100[db#data#u1:data]"; got != want {
		t.Errorf("task %s, want %s", got, want)
	}
	for _, r := range nr.reserve {
		if reservedFor(&r, "fw-1") != "db.instance-u1" || r.GetReservation().GetPrincipal() != "flotilla" || r.AllocationInfo.GetRole() != "stateful" {
			t.Fatalf("reserved resource %v lacks the labels, principal or allocation", r)
		}
		if reservedFor(&r, "fw-2") != "" {
			t.Fatal("another framework's id matched the labels")
		}
	}
	// Placed resources are not written.
	if placed[0].GetRole() != "*" || placed[0].Reservation != nil {
		t.Fatalf("placement's resource changed: %v", placed[0])
	}

	// Teardown: DESTROY the volumes, then UNRESERVE all, volumes as disk.
	ops := teardownOps(nr.task)
	if len(ops) != 2 || ops[0].Type != mesos.Offer_Operation_DESTROY || ops[1].Type != mesos.Offer_Operation_UNRESERVE {
		t.Fatalf("teardown ops %v", ops)
	}
	if got := summarize(ops[0].Destroy.Volumes); got != "disk(stateful):100[db#data#u1:data]" {
		t.Errorf("destroy %s", got)
	}
	if got := summarize(ops[1].Unreserve.Resources); got != "cpus(stateful):0.5 mem(stateful):64 ports(stateful):[31000-31000] disk(stateful):20 disk(stateful):100" {
		t.Errorf("unreserve %s", got)
	}
	if nr.task[4].Disk == nil {
		t.Fatal("teardownOps wrote the resources it was given")
	}
}

func TestReservedPorts(t *testing.T) {
	app := testApp("/db", 1)
	hp := uint32(31050)
	app.PortDefinitions = []appspec.PortDefinition{{Port: 0}, {Port: 31050}, {Port: 0}}
	app.RequirePorts = true
	_ = hp
	held := []mesos.Resource{{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: 31003, End: 31003}, {Begin: 31001, End: 31001}, {Begin: 31050, End: 31050}}}}}
	if got := fmt.Sprint(reservedPorts(&app, held)); got != "[31001 31050 31003]" {
		t.Errorf("ports by index %s, want [31001 31050 31003]", got)
	}
}

// TestPlanOffer: what each labelled reservation in an offer is used for.
func TestPlanOffer(t *testing.T) {
	res := func(inst, fw string) mesos.Resource {
		role := "stateful"
		return mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1}, Role: &role,
			Reservation: &mesos.Resource_ReservationInfo{Labels: reservationLabels(fw, inst)}}
	}
	o := mesos.Offer{FrameworkID: mesos.FrameworkID{Value: "fw"}, Resources: []mesos.Resource{
		res("a.instance-1", "fw"), res("a.instance-2", "fw"), res("a.instance-3", "fw"),
		res("b.instance-1", "fw"), res("c.instance-1", "fw"), res("x.instance-9", "fw"),
		res("y.instance-1", "other-fw"),
		{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 4}},
	}}
	known := map[string]reservationView{
		"a.instance-1": {appID: "/a"}, "a.instance-2": {appID: "/a"}, "a.instance-3": {appID: "/a", busy: true},
		"b.instance-1": {appID: "/b", wipe: true}, "c.instance-1": {appID: "/c"},
	}
	describe := func(as []offerAction) string {
		var out []string
		for _, a := range as {
			what := "relaunch"
			if a.teardown {
				what = "teardown"
			}
			out = append(out, a.instance+":"+what)
		}
		return strings.Join(out, " ")
	}
	wants := map[string]int{"/a": 1}
	if got, want := describe(planOffer(&o, known, wants, true)), "a.instance-1:relaunch b.instance-1:teardown x.instance-9:teardown"; got != want {
		t.Errorf("judging orphans: %s, want %s", got, want)
	}
	if wants["/a"] != 0 {
		t.Errorf("wants not decremented: %v", wants)
	}
	// While the stored apps are not all read, an unknown reservation may
	// be one of theirs: left alone.
	if got, want := describe(planOffer(&o, known, map[string]int{"/a": 5, "/c": 1}, false)), "a.instance-1:relaunch a.instance-2:relaunch b.instance-1:teardown c.instance-1:relaunch"; got != want {
		t.Errorf("not judging orphans: %s, want %s", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

// summarize writes resources as name(role):amount, with a volume's
// persistence id and container path.
func summarize(rs []mesos.Resource) string {
	var out []string
	for _, r := range rs {
		s := fmt.Sprintf("%s(%s):", r.Name, r.GetRole())
		if r.Ranges != nil {
			var rg []string
			for _, x := range r.Ranges.Range {
				rg = append(rg, fmt.Sprintf("%d-%d", x.Begin, x.End))
			}
			s += "[" + strings.Join(rg, ",") + "]"
		} else {
			s += fmt.Sprint(r.GetScalar().GetValue())
		}
		if p := r.GetDisk().GetPersistence(); p != nil {
			s += "[" + p.ID + ":" + r.Disk.GetVolume().GetContainerPath() + "]"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// reservedOffer is the offer an agent makes once a resident task ended:
// the task's labelled resources (reserved, with the volume) and some
// unreserved ones.
func reservedOffer(id, agent, host string, task mesos.TaskInfo) mesos.Offer {
	o := TestOffer(id, agent, host, 2, 1024, 32000, 32009, nil)
	o.Resources = append(o.Resources, task.Resources...)
	return o
}

func acceptOps(calls []Call) []mesos.Offer_Operation_Type {
	var out []mesos.Offer_Operation_Type
	for _, c := range calls {
		if c.Type == CallAccept {
			for _, op := range c.Ops {
				out = append(out, op.Type)
			}
		}
	}
	return out
}

// residentHarness is a subscribed scheduler of role stateful, recording
// its tasks in a memory store, running residentApp /db.
func residentHarness(t *testing.T, instances int) (*harness, *store.Memory, appspec.App) {
	mem := store.NewMemory(clock.NewFake(coreT0), 10)
	h := newHarness(t, func(c *Config) { c.Role = "stateful"; c.Tasks = mem })
	h.subscribe()
	app := residentApp("/db", instances)
	h.s.PutApp(app)
	h.sync()
	return h, mem, app
}

// TestResidentLifecycle: a resident instance reserves and creates its
// volume with its first launch, relaunches only on its reservation (the
// same agent), keeps it while scaled down, relaunches there when scaled
// up, and destroys and unreserves once its app is deleted.
func TestResidentLifecycle(t *testing.T) {
	h, mem, _ := residentHarness(t, 1)
	calls := h.offer("h1")
	if got := fmt.Sprint(acceptOps(calls)); got != "[RESERVE CREATE LAUNCH]" {
		t.Fatalf("first launch ops %s, want [RESERVE CREATE LAUNCH]: %v", got, calls)
	}
	first := calls[0].Launched()[0]
	inst, n, ok := splitTaskID(first.TaskID.Value)
	if !ok || n != 1 {
		t.Fatalf("first task id %s", first.TaskID.Value)
	}
	if got := summarize(first.Resources); !strings.Contains(got, "disk(stateful):100[db#data#") || !strings.HasPrefix(got, "cpus(stateful):0.5") {
		t.Fatalf("first task's resources %s: want reserved cpus and the volume", got)
	}
	if len(first.GetContainer().GetVolumes()) != 0 {
		t.Fatalf("the persistent volume went into ContainerInfo.volumes too: %v", first.Container.Volumes)
	}
	h.update(first.TaskID.Value, mesos.TASK_RUNNING)
	h.update(first.TaskID.Value, mesos.TASK_FAILED)
	h.step(10e9) // past the backoff

	// An offer of another agent, or of the same agent without the
	// reservation, launches nothing: the instance waits for its volume.
	for _, host := range []string{"h2", "h1"} {
		if got := launchedIDs(h.offer(host)); len(got) != 0 {
			t.Fatalf("offer of %s without the reservation launched %v", host, got)
		}
	}
	if q := h.s.Snapshot().Queue; len(q) != 1 || q[0].Count != 1 || !strings.Contains(q[0].Reason, "wait for an offer of their agent") {
		t.Fatalf("queue %+v: want the instance waiting for its agent, saying so", q)
	}
	calls = h.sendOffer(reservedOffer("o-r1", "a-h1", "h1", first))
	launched := launchedIDs(calls)
	if want := taskIDOf(inst, 2); len(launched) != 1 || launched[0] != want || fmt.Sprint(acceptOps(calls)) != "[LAUNCH]" {
		t.Fatalf("relaunch: ops %v tasks %v, want LAUNCH of %s", acceptOps(calls), launched, want)
	}
	second := calls[0].Launched()[0]
	if summarize(second.Resources) != summarize(first.Resources) {
		t.Fatalf("relaunch on %s, want the reservation %s", summarize(second.Resources), summarize(first.Resources))
	}
	h.update(second.TaskID.Value, mesos.TASK_RUNNING)

	// Scaled to 0: killed, reservation kept (offered back, left alone).
	if err := h.s.Scale("/db", 0); err != nil {
		t.Fatal(err)
	}
	h.sync()
	h.update(second.TaskID.Value, mesos.TASK_KILLED)
	calls = h.sendOffer(reservedOffer("o-r2", "a-h1", "h1", first))
	if ops := acceptOps(calls); len(ops) != 0 || countCalls(calls, CallDecline) != 1 {
		t.Fatalf("scaled to 0: %v, want the offer declined, the reservation kept", calls)
	}
	h.syncStore(mem, taskIDOf(inst, 2), stateReserved)

	// Scaled up: the same instance comes back on its reservation.
	if err := h.s.Scale("/db", 1); err != nil {
		t.Fatal(err)
	}
	h.step(10e9)
	if got := launchedIDs(h.offer("h2")); len(got) != 0 {
		t.Fatalf("scale up placed a new instance %v while one waits for its reservation", got)
	}
	calls = h.sendOffer(reservedOffer("o-r3", "a-h1", "h1", first))
	if got := launchedIDs(calls); len(got) != 1 || got[0] != taskIDOf(inst, 3) {
		t.Fatalf("scale up launched %v, want %s", got, taskIDOf(inst, 3))
	}
	third := calls[0].Launched()[0]
	h.update(third.TaskID.Value, mesos.TASK_RUNNING)

	// Deleted: the task is killed, then the volume destroyed and the
	// resources unreserved.
	if err := h.s.RemoveApp("/db"); err != nil {
		t.Fatal(err)
	}
	h.sync()
	h.update(third.TaskID.Value, mesos.TASK_KILLED)
	h.step(2e9) // past the revive throttle
	if h.s.Snapshot().Suppressed {
		t.Fatal("offers suppressed while a reservation waits to be torn down: no offer would come")
	}
	calls = h.sendOffer(reservedOffer("o-r4", "a-h1", "h1", first))
	if got := fmt.Sprint(acceptOps(calls)); got != "[DESTROY UNRESERVE]" {
		t.Fatalf("after delete: %s, want [DESTROY UNRESERVE]", got)
	}
	h.syncStore(mem, "", "")
	// Had the DESTROY failed, the next offer would hold an orphan: torn
	// down again.
	if got := fmt.Sprint(acceptOps(h.sendOffer(reservedOffer("o-r5", "a-h1", "h1", first)))); got != "[DESTROY UNRESERVE]" {
		t.Fatalf("orphan: %s, want [DESTROY UNRESERVE]", got)
	}
}

// TestResidentRestore: a new leader reads the reservation from the task
// records and relaunches the instance on it, counting incarnations on.
func TestResidentRestore(t *testing.T) {
	h, mem, app := residentHarness(t, 2)
	calls := h.offer("h1", "h2")
	var tasks []mesos.TaskInfo
	for _, c := range calls {
		tasks = append(tasks, c.Launched()...)
	}
	if len(tasks) != 2 {
		t.Fatalf("launched %d tasks, want 2", len(tasks))
	}
	slices.SortFunc(tasks, func(a, b mesos.TaskInfo) int { return strings.Compare(a.AgentID.Value, b.AgentID.Value) })
	for _, ti := range tasks {
		h.update(ti.TaskID.Value, mesos.TASK_RUNNING)
	}
	h.update(tasks[0].TaskID.Value, mesos.TASK_FINISHED)
	h.syncStore(mem, tasks[0].TaskID.Value, stateReserved)

	// The new leader: apps first, then the records.
	h2 := newHarness(t, func(c *Config) { c.Role = "stateful"; c.Tasks = mem })
	h2.s.PutApp(app)
	if n, err := h2.s.Restore(context.Background()); err != nil || n != 1 {
		t.Fatalf("restore: %d %v, want the running task", n, err)
	}
	h2.subscribe()
	h2.update(tasks[1].TaskID.Value, mesos.TASK_RUNNING)
	h2.step(10e9)
	if got := launchedIDs(h2.offer("h3")); len(got) != 0 {
		t.Fatalf("the new leader placed a new instance %v: it does not know the reservation", got)
	}
	calls = h2.sendOffer(reservedOffer("o-r1", "a-h1", "h1", tasks[0]))
	inst, _, _ := splitTaskID(tasks[0].TaskID.Value)
	if got := launchedIDs(calls); len(got) != 1 || got[0] != taskIDOf(inst, 2) {
		t.Fatalf("new leader launched %v on the reservation, want %s", got, taskIDOf(inst, 2))
	}
}

// TestResidentReservationRefused: a first task that fails before Mesos
// confirmed its reservation (the RESERVE refused, TASK_ERROR) gives the
// instance up, so it is placed anew rather than waiting forever.
func TestResidentReservationRefused(t *testing.T) {
	h, _, _ := residentHarness(t, 1)
	first := launchedIDs(h.offer("h1"))
	if len(first) != 1 {
		t.Fatalf("launched %v", first)
	}
	h.update(first[0], mesos.TASK_ERROR)
	h.step(10e9)
	again := launchedIDs(h.offer("h2"))
	if len(again) != 1 || strings.HasPrefix(again[0], mustInstance(first[0])) {
		t.Fatalf("after an unconfirmed reservation failed: launched %v, want a new instance", again)
	}
}

func (h *harness) sendOffer(o mesos.Offer) []Call {
	h.t.Helper()
	h.rec.Take()
	h.send(OffersInput(o))
	return h.rec.Take()
}

// syncStore waits for the task records to be written and checks the one
// of taskID (none at all when taskID is "").
func (h *harness) syncStore(mem *store.Memory, taskID, state string) {
	h.t.Helper()
	h.sync()
	recs, err := mem.ListAllTasks(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	if taskID == "" {
		if len(recs) != 0 {
			h.t.Fatalf("records left: %+v", recs)
		}
		return
	}
	for _, r := range recs {
		if r.TaskID == taskID {
			if r.State != state {
				h.t.Fatalf("record of %s: %s, want %s", taskID, r.State, state)
			}
			return
		}
	}
	h.t.Fatalf("no record of %s in %+v", taskID, recs)
}

// TestResidentRoll: a new version of a one-instance resident app kills
// the old task first (Marathon's restart strategy for resident apps: one
// below minimumHealthCapacity, never an extra instance) and relaunches the
// instance on its reservation with the new version.
func TestResidentRoll(t *testing.T) {
	h, _, app := residentHarness(t, 1)
	calls := h.offer("h1")
	first := calls[0].Launched()[0]
	h.update(first.TaskID.Value, mesos.TASK_RUNNING)
	app.Version, app.Cmd = "v2", "new"
	h.s.PutApp(app)
	h.sync()
	if k := h.rec.Killed(); len(k) != 1 || k[0] != first.TaskID.Value {
		t.Fatalf("killed %v, want the old task %s", k, first.TaskID.Value)
	}
	if got := launchedIDs(h.offer("h2")); len(got) != 0 {
		t.Fatalf("the roll launched %v beside the old task: a new instance, not the old one's reservation", got)
	}
	h.update(first.TaskID.Value, mesos.TASK_KILLED)
	calls = h.sendOffer(reservedOffer("o-r1", "a-h1", "h1", first))
	inst, _, _ := splitTaskID(first.TaskID.Value)
	got := launchedIDs(calls)
	if len(got) != 1 || got[0] != taskIDOf(inst, 2) || calls[0].Launched()[0].GetCommand().GetValue() != "new" {
		t.Fatalf("after the kill launched %v, want %s of version v2", got, taskIDOf(inst, 2))
	}
}

// TestResidentWipeSurvivesFailover: a wiped suspended instance whose agent
// has not offered yet loses its record at once, so a new leader tears the
// reservation down as an orphan instead of relaunching it.
func TestResidentWipeSurvivesFailover(t *testing.T) {
	h, mem, app := residentHarness(t, 1)
	first := h.offer("h1")[0].Launched()[0]
	h.update(first.TaskID.Value, mesos.TASK_RUNNING)
	if err := h.s.Scale("/db", 0); err != nil {
		t.Fatal(err)
	}
	h.sync()
	h.update(first.TaskID.Value, mesos.TASK_KILLED)
	sp := h.s.SuspendedOf("/db")
	if len(sp) != 1 || sp[0].TaskID != first.TaskID.Value || sp[0].AgentID != "a-h1" {
		t.Fatalf("suspended %+v, want %s on a-h1", sp, first.TaskID.Value)
	}
	h.syncStore(mem, first.TaskID.Value, stateReserved)
	if err := h.s.WipeTasks("/db", []string{sp[0].TaskID}); err != nil {
		t.Fatal(err)
	}
	h.syncStore(mem, "", "")
	if sp := h.s.SuspendedOf("/db"); len(sp) != 0 {
		t.Fatalf("still suspended after the wipe: %+v", sp)
	}
	if err := h.s.WipeTasks("/db", []string{"db.instance-00000000-0000-4000-8000-000000000000._app.1"}); !errors.Is(err, ErrUnknownTask) {
		t.Fatalf("wipe of an unknown instance: %v, want ErrUnknownTask", err)
	}

	app.Instances = 1
	h2 := newHarness(t, func(c *Config) { c.Role = "stateful"; c.Tasks = mem; c.Rand = rand.New(rand.NewSource(2)) })
	h2.s.PutApp(app)
	if _, err := h2.s.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	h2.subscribe()
	calls := h2.sendOffer(reservedOffer("o-r1", "a-h1", "h1", first))
	if got := fmt.Sprint(acceptOps(calls)); got != "[DESTROY UNRESERVE RESERVE CREATE LAUNCH]" {
		t.Fatalf("new leader on the wiped reservation's offer: %s, want it torn down and a new instance made", got)
	}
	if got := launchedIDs(calls); len(got) != 1 || strings.HasPrefix(got[0], mustInstance(first.TaskID.Value)) {
		t.Fatalf("launched %v, want a new instance", got)
	}
}

// TestResidentKillPending: an offer that comes while the killed task of an
// instance is still being killed starts no new instance: the instance
// waits for its reservation to be free.
func TestResidentKillPending(t *testing.T) {
	h, _, _ := residentHarness(t, 1)
	first := h.offer("h1")[0].Launched()[0]
	h.update(first.TaskID.Value, mesos.TASK_RUNNING)
	if err := h.s.KillTasks("/db", []string{first.TaskID.Value}); err != nil {
		t.Fatal(err)
	}
	h.sync()
	h.update(first.TaskID.Value, mesos.TASK_KILLING)
	if got := launchedIDs(h.offer("h2")); len(got) != 0 {
		t.Fatalf("while the old task was being killed an offer launched %v: a new instance beside the one being replaced", got)
	}
	h.update(first.TaskID.Value, mesos.TASK_KILLED)
	h.step(10e9)
	inst, _, _ := splitTaskID(first.TaskID.Value)
	if got := launchedIDs(h.sendOffer(reservedOffer("o-r1", "a-h1", "h1", first))); len(got) != 1 || got[0] != taskIDOf(inst, 2) {
		t.Fatalf("after the kill launched %v, want %s", got, taskIDOf(inst, 2))
	}
}
