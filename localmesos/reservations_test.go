package localmesos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/flotilla-sched/flotilla/internal/testbed"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

// dyn is r dynamically reserved to role in the pre-refinement format
// Flotilla and Marathon send, with Marathon's labels.
func dyn(r mesos.Resource, role string, labels ...string) mesos.Resource {
	r.Role = &role
	p := "flotilla"
	lab := &mesos.Labels{}
	for i := 0; i+1 < len(labels); i += 2 {
		v := labels[i+1]
		lab.Labels = append(lab.Labels, mesos.Label{Key: labels[i], Value: &v})
	}
	r.Reservation = &mesos.Resource_ReservationInfo{Principal: &p, Labels: lab}
	return r
}

func pvol(r mesos.Resource, id, path string, mode mesos.Volume_Mode) mesos.Resource {
	r.Disk = &mesos.Resource_DiskInfo{Persistence: &mesos.Resource_DiskInfo_Persistence{ID: id}, Volume: &mesos.Volume{ContainerPath: path, Mode: &mode}}
	return r
}

func accept(o mesos.Offer, ops ...mesos.Offer_Operation) *scheduler.Call {
	return calls.Accept(calls.OfferOperations(ops).WithOffers(o.ID)).With(calls.RefuseSeconds(0))
}

func withOpID(op mesos.Offer_Operation, id string) mesos.Offer_Operation {
	op.ID = &mesos.OperationID{Value: id}
	return op
}

// agentStateJSON is one agent of /master/state.
type agentStateJSON struct {
	ID           string                       `json:"id"`
	Unreserved   map[string]any               `json:"unreserved_resources"`
	Reserved     map[string]map[string]any    `json:"reserved_resources"`
	ReservedFull map[string][]json.RawMessage `json:"reserved_resources_full"`
}

func stateOf(t *testing.T, m *Master, id string) agentStateJSON {
	t.Helper()
	var st struct {
		Slaves []agentStateJSON `json:"slaves"`
	}
	if err := json.Unmarshal([]byte(getBody(t, m.URL()+"/master/state")), &st); err != nil {
		t.Fatal(err)
	}
	for _, a := range st.Slaves {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("agent %s not in /master/state", id)
	return agentStateJSON{}
}

// TestPersistentVolumeLifecycle is Marathon's resident task on Mesos: one
// ACCEPT reserves (with Marathon's labels), creates a volume and launches
// a task that writes into it; the task ends; the reservation and volume
// come back in the next offer, to the role only, and a new task on them
// reads the data back; the volume cannot be destroyed while a task uses
// it; DESTROY + UNRESERVE give the agent its unreserved resources back
// and delete the data.
func TestPersistentVolumeLifecycle(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"process", "docker"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			factory := func(string) (executor.Executor, error) { return executor.NewProcess(executor.ProcessConfig{}), nil }
			if kind == "docker" {
				sock := testbed.DockerSocket(t)
				factory = func(string) (executor.Executor, error) {
					return executor.NewDocker(executor.DockerConfig{Host: "unix://" + sock})
				}
			}
			persistentVolumeLifecycle(t, kind, factory)
		})
	}
}

func persistentVolumeLifecycle(t *testing.T, kind string, factory ExecutorFactory) {
	res := Resources{CPUs: 2, Mem: 1024, Disk: 1024, Ports: []PortRange{{22500, 22510}}}
	m, _ := startMaster(t, Config{Resources: res, Agents: 1, WorkDir: t.TempDir(), Executor: factory})
	task := func(id string, o mesos.Offer, cmd string, res ...mesos.Resource) mesos.TaskInfo {
		ti := cmdTask(id+"-"+kind, o, cmd, res...)
		if kind == "docker" {
			ti.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_DOCKER.Enum(), Docker: &mesos.ContainerInfo_DockerInfo{
				Image: "flotilla/busybox:dev", Network: mesos.ContainerInfo_DockerInfo_HOST.Enum()}}
		}
		return ti
	}
	agentID := m.Agents()[0].ID
	f := startFramework(t, m, fwOpts{info: multiRole("resident", []string{"web"})})
	o := f.offers(10 * time.Second)[0]

	labels := []string{"marathon_framework_id", "fw-1", "marathon_task_id", "app.resident.1"}
	cpus, mem, disk := dyn(scalar("cpus", 0.5), "web", labels...), dyn(scalar("mem", 64), "web", labels...), dyn(scalar("disk", 100), "web", labels...)
	vol := pvol(disk, "app#data#1", "data", mesos.RW)
	writer := task("writer", o, "echo kept > data/f", cpus, mem, vol)
	if err := f.call(accept(o, calls.OpReserve(cpus, mem, disk), calls.OpCreate(vol), calls.OpLaunch(writer))); err != nil {
		t.Fatal(err)
	}
	seen := updateKeepOffer(t, f, writer.TaskID.Value, mesos.TASK_FINISHED)

	st := stateOf(t, m, agentID)
	if got := fmt.Sprint(st.Reserved["web"]["cpus"], " ", st.Reserved["web"]["mem"], " ", st.Reserved["web"]["disk"], " ", st.Unreserved["cpus"]); got != "0.5 64 100 1.5" {
		t.Fatalf("/master/state reserved cpus, mem, disk to web and unreserved cpus = %s, want 0.5 64 100 1.5", got)
	}
	var parts []string
	for _, r := range st.ReservedFull["web"] {
		parts = append(parts, string(r))
	}
	full := strings.Join(parts, " ")
	for _, want := range []string{`"marathon_task_id"`, `"app.resident.1"`, `"app#data#1"`, `"DYNAMIC"`, `"principal":"flotilla"`} {
		if !strings.Contains(full, want) {
			t.Fatalf("reserved_resources_full lacks %s: %s", want, full)
		}
	}

	// The agent's own /state shows them too.
	var ast struct {
		ID           string                       `json:"id"`
		ReservedFull map[string][]json.RawMessage `json:"reserved_resources_full"`
	}
	if err := json.Unmarshal([]byte(getBody(t, m.Agents()[0].URL+"/slave(1)/state")), &ast); err != nil {
		t.Fatal(err)
	}
	if ast.ID != agentID || len(ast.ReservedFull["web"]) != 3 || !strings.Contains(string(ast.ReservedFull["web"][1]), `"app#data#1"`) {
		t.Fatalf("agent /state: id %s, reserved_resources_full %s", ast.ID, ast.ReservedFull)
	}

	// The next offer has the reservation and the volume, as Marathon
	// reads them (Resource.role + reservation.labels, disk.persistence).
	o = waitOffer(t, f, func(o mesos.Offer) bool { return strings.Contains(summary(o), "disk(web):100") }, seen)
	var gotVol, gotLabel bool
	for _, r := range o.Resources {
		if r.GetDisk().GetPersistence().GetID() == "app#data#1" && r.GetDisk().GetVolume().GetContainerPath() == "data" && r.GetRole() == "web" {
			gotVol = true
		}
		for _, l := range r.GetReservation().GetLabels().GetLabels() {
			if l.Key == "marathon_task_id" && l.GetValue() == "app.resident.1" && r.Name == "cpus" {
				gotLabel = true
			}
		}
	}
	if !gotVol || !gotLabel {
		t.Fatalf("offer after the task: volume %v, cpus labelled %v: %v", gotVol, gotLabel, o.Resources)
	}
	reader := task("reader", o, `test "$(cat data/f)" = kept && echo yes > data/read-ok && sleep 300`, cpus, mem, vol)
	if err := f.call(accept(o, calls.OpLaunch(reader))); err != nil {
		t.Fatal(err)
	}
	o = offerAfter(t, f, updateKeepOffer(t, f, reader.TaskID.Value, mesos.TASK_RUNNING))
	dir := filepath.Join(m.Agents()[0].WorkDir, "volumes", "roles", "web", "app#data#1")
	waitFile(t, filepath.Join(dir, "read-ok"))
	if err := f.call(accept(o, withOpID(calls.OpDestroy(vol), "destroy-in-use"))); err != nil {
		t.Fatal(err)
	}
	if ev := f.next(10*time.Second, scheduler.Event_UPDATE_OPERATION_STATUS); ev.UpdateOperationStatus.Status.GetMessage() != "Persistent volumes in use" ||
		ev.UpdateOperationStatus.Status.State != mesos.OPERATION_ERROR {
		t.Fatalf("DESTROY of a volume in use: %v, want OPERATION_ERROR Persistent volumes in use", ev.UpdateOperationStatus.Status)
	}
	if err := f.call(calls.Kill(reader.TaskID.Value, agentID)); err != nil {
		t.Fatal(err)
	}
	seen = updateKeepOffer(t, f, reader.TaskID.Value, mesos.TASK_KILLED)

	if _, err := os.Stat(filepath.Join(dir, "f")); err != nil {
		t.Fatalf("the volume's data under the agent's work dir: %v", err)
	}
	o = waitOffer(t, f, func(o mesos.Offer) bool { return strings.Contains(summary(o), "disk(web):100") }, seen)
	if err := f.call(accept(o, calls.OpDestroy(vol), calls.OpUnreserve(cpus, mem, disk))); err != nil {
		t.Fatal(err)
	}
	o = f.offers(10 * time.Second)[0]
	if got, want := summary(o), "cpus(*):2 disk(*):1024 mem(*):1024 ports(*):[22500-22510]"; got != want {
		t.Fatalf("after DESTROY + UNRESERVE the offer is %q, want %q", got, want)
	}
	if st := stateOf(t, m, agentID); len(st.Reserved) != 0 || len(st.ReservedFull) != 0 {
		t.Fatalf("after UNRESERVE /master/state still has reservations: %v %v", st.Reserved, st.ReservedFull)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the destroyed volume's directory %s is still there after 10s", dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFile waits for path to exist.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := os.Stat(path)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not there within 20s: %v", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// updateKeepOffer waits for the task's update in state and gives the
// latest offer that came meanwhile (nil when none did): a single agent
// has one offer outstanding, so an offer skipped here would never come
// again.
func updateKeepOffer(t *testing.T, f *testFramework, taskID string, state mesos.TaskState) *mesos.Offer {
	t.Helper()
	var last *mesos.Offer
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no %s update for %s within 20s", state, taskID)
		}
		e := f.next(left, scheduler.Event_UPDATE, scheduler.Event_OFFERS)
		if e.Type == scheduler.Event_OFFERS {
			last = &e.Offers.Offers[len(e.Offers.Offers)-1]
			continue
		}
		st := e.Update.Status
		if st.TaskID.Value == taskID && st.GetState() == state {
			return last
		}
		if st.TaskID.Value == taskID && isTerminal(st.GetState()) {
			t.Fatalf("%s ended %s (%s), want %s", taskID, st.GetState(), st.GetMessage(), state)
		}
	}
}

// offerAfter is the offer updateKeepOffer saw, or the next one.
func offerAfter(t *testing.T, f *testFramework, o *mesos.Offer) mesos.Offer {
	t.Helper()
	if o != nil {
		return *o
	}
	return f.offers(20 * time.Second)[0]
}

// waitOffer waits for an offer that ok accepts (seen first, when set),
// declining the others at once.
func waitOffer(t *testing.T, f *testFramework, ok func(mesos.Offer) bool, seen *mesos.Offer) mesos.Offer {
	t.Helper()
	if seen != nil {
		if ok(*seen) {
			return *seen
		}
		if err := f.call(calls.Decline(seen.ID).With(calls.RefuseSeconds(0))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no matching offer within 20s")
		}
		for _, o := range f.offers(left) {
			if ok(o) {
				return o
			}
			if err := f.call(calls.Decline(o.ID).With(calls.RefuseSeconds(0))); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestReservedOnlyToTheirRole: a dynamic reservation is offered to its
// role alone, as a static one is.
func TestDynamicReservationOnlyToItsRole(t *testing.T) {
	t.Parallel()
	res := Resources{CPUs: 2, Mem: 512, Disk: 100}
	m, _ := startMaster(t, Config{Resources: res, Agents: 1})
	web := startFramework(t, m, fwOpts{info: multiRole("web", []string{"web"})})
	o := web.offers(10 * time.Second)[0]
	if err := web.call(accept(o, calls.OpReserve(dyn(scalar("cpus", 1), "web"), dyn(scalar("mem", 256), "web")))); err != nil {
		t.Fatal(err)
	}
	o = web.offers(10 * time.Second)[0]
	if got, want := summary(o), "cpus(*):1 cpus(web):1 disk(*):100 mem(*):256 mem(web):256"; got != want {
		t.Fatalf("web is offered %q, want %q", got, want)
	}
	// Reservations belong to the agent and the role, not to the master
	// or the framework: they survive a master failover (Mesos's agents
	// checkpoint them and report them when they re-register) and the
	// framework's removal.
	if err := m.Failover(context.Background()); err != nil {
		t.Fatal(err)
	}
	o = waitOffer(t, web, func(o mesos.Offer) bool { return strings.HasPrefix(o.ID.Value, m.ID()+"-O") }, nil)
	if got, want := summary(o), "cpus(*):1 cpus(web):1 disk(*):100 mem(*):256 mem(web):256"; got != want {
		t.Fatalf("after a master failover web is offered %q, want %q", got, want)
	}
	web.stop()
	other := startFramework(t, m, fwOpts{info: multiRole("other", []string{"other"})})
	o = other.offers(10 * time.Second)[0]
	if got, want := summary(o), "cpus(*):1 disk(*):100 mem(*):256"; got != want {
		t.Fatalf("role other is offered %q, want %q (no web reservation)", got, want)
	}
	// Nor can it unreserve what it was not offered.
	if err := other.call(accept(o, withOpID(calls.OpUnreserve(dyn(scalar("cpus", 1), "web")), "steal"))); err != nil {
		t.Fatal(err)
	}
	msg := other.next(10*time.Second, scheduler.Event_UPDATE_OPERATION_STATUS).UpdateOperationStatus.Status.GetMessage()
	if !strings.HasPrefix(msg, "Invalid UNRESERVE Operation: ") || !strings.Contains(msg, "does not contain cpus(reservations: [(DYNAMIC,web,flotilla)]):1") {
		t.Fatalf("UNRESERVE of another role's reservation: %q", msg)
	}
}

// TestOperationValidation: each bad operation is dropped whole with
// Mesos's message (as OPERATION_ERROR when it has an id), and changes
// nothing: the next offer is what the agent had.
func TestOperationValidation(t *testing.T) {
	t.Parallel()
	res := Resources{CPUs: 2, Mem: 512, Disk: 100}
	m, _ := startMaster(t, Config{Resources: res, Agents: 1})
	f := startFramework(t, m, fwOpts{info: multiRole("v", []string{"web"})})
	o := f.offers(10 * time.Second)[0]
	// One reservation and volume to test the operations that need them.
	disk := dyn(scalar("disk", 10), "web")
	vol := pvol(disk, "v1", "data", mesos.RW)
	if err := f.call(accept(o, calls.OpReserve(disk), calls.OpCreate(vol))); err != nil {
		t.Fatal(err)
	}
	const start = "cpus(*):2 disk(*):90 disk(web):10 mem(*):512"
	o = f.offers(10 * time.Second)[0]
	if got := summary(o); got != start {
		t.Fatalf("after RESERVE + CREATE offered %q, want %q", got, start)
	}
	static := scalar("cpus", 1)
	static.Role = strPtr("web")
	star := scalar("cpus", 1)
	star.Role = strPtr("*")
	star.Reservation = &mesos.Resource_ReservationInfo{}
	tests := []struct {
		name string
		op   mesos.Offer_Operation
		want string
	}{
		{"reserve to *", calls.OpReserve(star), `Invalid resources: Invalid reservation: role "*" cannot be dynamically reserved`},
		{"reserve static", calls.OpReserve(static), "Resource cpus(web):1 is not dynamically reserved"},
		{"reserve another role", calls.OpReserve(dyn(scalar("cpus", 1), "other")), "A reserve operation was attempted for a resource with role 'other', but the resource was allocated to role 'web'"},
		{"reserve more than offered", calls.OpReserve(dyn(scalar("cpus", 3), "web")), "Invalid RESERVE Operation: " + "cpus:2; disk:90; disk(reservations: [(DYNAMIC,web,flotilla)])[v1:data]:10; mem:512 does not contain cpus:3"},
		{"reserve a volume", calls.OpReserve(pvol(dyn(scalar("disk", 1), "web"), "v2", "d", mesos.RW)), "A persistent volume disk(reservations: [(DYNAMIC,web,flotilla)])[v2:d]:1 must already be reserved"},
		{"unreserve unreserved", calls.OpUnreserve(scalar("cpus", 1)), "Resource cpus:1 is not dynamically reserved"},
		{"unreserve a volume", calls.OpUnreserve(vol), "A dynamically reserved persistent volume disk(reservations: [(DYNAMIC,web,flotilla)])[v1:data]:10 cannot be unreserved directly. Please destroy the persistent volume first then unreserve the resource"},
		{"create on unreserved disk", calls.OpCreate(pvol(scalar("disk", 1), "v3", "d", mesos.RW)), "Invalid resources: Invalid DiskInfo: Persistent volumes cannot be created from unreserved resources"},
		{"create read-only", calls.OpCreate(pvol(dyn(scalar("disk", 1), "web"), "v4", "d", mesos.RO)), "Not a persistent volume: Read-only persistent volume not supported"},
		{"create without reservation", calls.OpCreate(pvol(dyn(scalar("disk", 1), "web", "k", "v"), "v5", "d", mesos.RW)), "Invalid CREATE Operation: "},
		{"create a duplicate id", calls.OpCreate(pvol(dyn(scalar("disk", 10), "web"), "v1", "other", mesos.RW)), "Persistence ID 'v1' is not unique"},
		{"create with a bad id", calls.OpCreate(pvol(dyn(scalar("disk", 1), "web"), "a/b", "d", mesos.RW)), "Invalid resources: Invalid DiskInfo: Invalid persistence ID for persistent volume: '/' is not allowed"},
		{"create a host path", calls.OpCreate(func() mesos.Resource {
			r := pvol(dyn(scalar("disk", 1), "web"), "v6", "d", mesos.RW)
			r.Disk.Volume.HostPath = strPtr("/tmp")
			return r
		}()), "Invalid resources: Invalid DiskInfo: Expecting 'host_path' to be unset for persistent volume"},
		{"destroy unknown", calls.OpDestroy(pvol(dyn(scalar("disk", 10), "web"), "nope", "data", mesos.RW)), "Persistent volumes not found"},
		{"destroy a plain disk", calls.OpDestroy(disk), "Not a persistent volume: Resource disk(reservations: [(DYNAMIC,web,flotilla)]):10 does not have DiskInfo"},
	}
	for i, tc := range tests {
		id := fmt.Sprintf("op-%d", i)
		if err := f.call(accept(o, withOpID(tc.op, id))); err != nil {
			t.Fatal(err)
		}
		st := f.next(10*time.Second, scheduler.Event_UPDATE_OPERATION_STATUS).UpdateOperationStatus.Status
		if st.State != mesos.OPERATION_ERROR || st.GetOperationID().GetValue() != id || !strings.HasPrefix(st.GetMessage(), tc.want) {
			t.Errorf("%s: %s %s %q, want OPERATION_ERROR %s %q", tc.name, st.State, st.GetOperationID().GetValue(), st.GetMessage(), id, tc.want)
		}
		o = f.offers(10 * time.Second)[0]
		if got := summary(o); got != start {
			t.Fatalf("%s changed the agent: offered %q, want %q", tc.name, got, start)
		}
	}
	// Without an id a bad operation is dropped silently, and the valid
	// operations beside it still apply: UNRESERVE of what is not
	// reserved, then a good RESERVE.
	if err := f.call(accept(o, calls.OpUnreserve(dyn(scalar("mem", 1), "web")), calls.OpReserve(dyn(scalar("mem", 12), "web")))); err != nil {
		t.Fatal(err)
	}
	o = f.offers(10 * time.Second)[0]
	if got, want := summary(o), "cpus(*):2 disk(*):90 disk(web):10 mem(*):500 mem(web):12"; got != want {
		t.Fatalf("after a dropped UNRESERVE and a good RESERVE offered %q, want %q", got, want)
	}
}

// TestReservationKeys: the accounting key is the resource's identity as
// Mesos compares it: either format of the same reservation and labels in
// any order give one key; another label, principal, persistence id or
// container path gives another; the offer renders the key back in the
// framework's format.
func TestReservationKeys(t *testing.T) {
	t.Parallel()
	key := func(r mesos.Resource) string {
		t.Helper()
		p, err := parseResource(&r)
		if err != nil {
			t.Fatalf("parse %v: %v", r, err)
		}
		return p.key
	}
	legacy := dyn(scalar("cpus", 1), "web", "a", "1", "b", "2")
	swapped := dyn(scalar("cpus", 1), "web", "b", "2", "a", "1")
	refined := scalar("cpus", 1)
	refined.Reservations = []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_DYNAMIC.Enum(), Role: strPtr("web"),
		Principal: strPtr("flotilla"), Labels: legacy.Reservation.Labels}}
	if key(legacy) != key(swapped) || key(legacy) != key(refined) {
		t.Fatalf("one reservation, three keys: %q %q %q", key(legacy), key(swapped), key(refined))
	}
	other := []mesos.Resource{dyn(scalar("cpus", 1), "web", "a", "1"), dyn(scalar("cpus", 1), "web", "a", "1", "b", "3"),
		func() mesos.Resource {
			r := dyn(scalar("cpus", 1), "web", "a", "1", "b", "2")
			r.Reservation.Principal = strPtr("x")
			return r
		}(),
		withRole(scalar("cpus", 1), "web"), scalar("cpus", 1)}
	for _, r := range other {
		if key(r) == key(legacy) {
			t.Errorf("%v has the key of %v", r, legacy)
		}
	}
	disk := dyn(scalar("disk", 5), "web")
	if key(pvol(disk, "v", "data", mesos.RW)) == key(pvol(disk, "v", "other", mesos.RW)) || key(pvol(disk, "v", "data", mesos.RW)) == key(pvol(disk, "w", "data", mesos.RW)) {
		t.Errorf("volumes with another container path or id share a key")
	}
	s, err := fromMesos([]mesos.Resource{pvol(disk, "v", "data", mesos.RW)})
	if err != nil {
		t.Fatal(err)
	}
	for _, refine := range []bool{false, true} {
		rs := s.toMesos("web", refine)
		if len(rs) != 1 || rs[0].GetDisk().GetPersistence().GetID() != "v" || reservationRole(&rs[0]) != "web" ||
			(refine != (len(rs[0].Reservations) == 1)) || (!refine && rs[0].GetReservation().GetPrincipal() != "flotilla") {
			t.Errorf("refinement %v: rendered %v", refine, rs)
		}
		back, err := fromMesos(rs)
		if err != nil || !back.contains(s) || !s.contains(back) {
			t.Errorf("refinement %v: the offer's resource does not account as the key it came from: %v", refine, err)
		}
	}
}
