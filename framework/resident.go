package framework

import (
	"slices"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
)

// ---- resident instances: the pure part ----
//
// An app with persistent volumes (appspec.App.IsResident) has resident
// instances, as Marathon runs them. An instance's first launch reserves
// what its task takes (cpus, mem, disk, ports and one disk per volume)
// under the framework's role, labelled with the framework and instance
// ids (Marathon's marathon_framework_id and marathon_task_id), creates
// the volumes on that reservation, and launches the task on it, all in
// one ACCEPT (RESERVE, CREATE, LAUNCH). When the task ends, the
// reservation stays: the instance is relaunched only on an offer of that
// agent that holds its labelled resources, on exactly those resources, so
// the new task finds the volume's data. Task ids count incarnations on
// the instance id (<instance>._app.2, …). Scaling down keeps the
// reservations of the instances it stops (Marathon's suspended resident
// instances; scaling up relaunches them); deleting the app or wiping a
// task destroys the volumes and unreserves (DESTROY, UNRESERVE) at the
// next offer of the agent. Labelled reservations of this framework that
// no instance claims are destroyed too, as Marathon's
// OfferMatcherReconciler does. resident_core.go keeps the state.

// Reservation label keys, Marathon's (ReservationLabels, LabelKeys).
const (
	labelFrameworkID = "marathon_framework_id"
	labelInstanceID  = "marathon_task_id"
)

// stateReserved is the task record state of a resident instance with no
// task: the record of its last task is kept with this state, so a new
// leader knows the reservation (and the incarnation to count on from).
const stateReserved = "RESERVED"

// incarnationSep separates an app task id's instance id from its
// incarnation.
const incarnationSep = "._app."

// splitTaskID splits an app task id into its instance id and incarnation;
// ok is false for ids not of that scheme (pod containers', foreign ones).
func splitTaskID(taskID string) (instance string, n int, ok bool) {
	i := strings.LastIndex(taskID, incarnationSep)
	if i <= 0 || !strings.Contains(taskID[:i], instanceSep) {
		return "", 0, false
	}
	digits := taskID[i+len(incarnationSep):]
	n, err := strconv.Atoi(digits)
	if err != nil || n < 1 || strconv.Itoa(n) != digits {
		return "", 0, false
	}
	return taskID[:i], n, true
}

// taskIDOf is the id of an instance's n-th task.
func taskIDOf(instance string, n int) string {
	return instance + incarnationSep + strconv.Itoa(n)
}

// reservationLabels are the labels of an instance's reserved resources.
func reservationLabels(frameworkID, instance string) *mesos.Labels {
	fw, in := frameworkID, instance
	return &mesos.Labels{Labels: []mesos.Label{{Key: labelFrameworkID, Value: &fw}, {Key: labelInstanceID, Value: &in}}}
}

// reservedFor says whose reservation a resource is: the instance id of its
// labels when they name frameworkID; "" for other resources.
func reservedFor(r *mesos.Resource, frameworkID string) string {
	var labels []mesos.Label
	if r.Reservation != nil {
		labels = r.Reservation.GetLabels().GetLabels()
	}
	if n := len(r.Reservations); n > 0 {
		labels = r.Reservations[n-1].GetLabels().GetLabels()
	}
	fw, inst := "", ""
	for _, l := range labels {
		switch l.Key {
		case labelFrameworkID:
			fw = l.GetValue()
		case labelInstanceID:
			inst = l.GetValue()
		}
	}
	if fw != frameworkID || frameworkID == "" {
		return ""
	}
	return inst
}

// offerReservations groups an offer's resources by the instance whose
// labelled reservation they are, in the offer's order.
func offerReservations(o *mesos.Offer) map[string][]mesos.Resource {
	var out map[string][]mesos.Resource
	fw := o.FrameworkID.Value
	for i := range o.Resources {
		if inst := reservedFor(&o.Resources[i], fw); inst != "" {
			if out == nil {
				out = map[string][]mesos.Resource{}
			}
			out[inst] = append(out[inst], o.Resources[i])
		}
	}
	return out
}

// residentRequestDisk is the disk a new instance takes from an offer: the
// sandbox's and every persistent volume's.
func residentRequestDisk(app *appspec.App) float64 {
	d := app.Disk
	for _, v := range app.PersistentVolumes() {
		d += v.Persistent.Size
	}
	return d
}

// newReservation is what one ACCEPT does for a new resident instance.
type newReservation struct {
	reserve []mesos.Resource // RESERVE: everything the task and volumes take
	volumes []mesos.Resource // CREATE: the persistent volumes
	task    []mesos.Resource // the task's resources: reserved, with the volumes
}

// planReservation turns the unreserved resources a placement took into a
// new instance's reservation (role, principal, labels), the volumes made
// on it (persistence ids Marathon's way: <app>#<containerPath>#<uuid of
// the instance>) and the task's resources. The placement's disk holds the
// sandbox's and the volumes' (residentRequestDisk); it is cut here. Pure.
func planReservation(app *appspec.App, placed []mesos.Resource, role, principal string, labels *mesos.Labels, instance string) newReservation {
	var nr newReservation
	resv := &mesos.Resource_ReservationInfo{Labels: labels}
	if principal != "" {
		p := principal
		resv.Principal = &p
	}
	reserved := func(r mesos.Resource) mesos.Resource {
		r.Role = &role
		r.Reservation = resv
		r.Reservations = nil
		return r
	}
	scalar := func(like mesos.Resource, v float64) mesos.Resource {
		r := like
		r.Scalar = &mesos.Value_Scalar{Value: v}
		return reserved(r)
	}
	var disk *mesos.Resource
	for _, r := range placed {
		if r.Name == "disk" {
			if disk == nil {
				d := r
				disk = &d
			}
			continue
		}
		rr := reserved(r)
		nr.reserve = append(nr.reserve, rr)
		nr.task = append(nr.task, rr)
	}
	if disk == nil {
		return nr // no disk placed: the request had none to take
	}
	if app.Disk > 0 {
		d := scalar(*disk, app.Disk)
		nr.reserve = append(nr.reserve, d)
		nr.task = append(nr.task, d)
	}
	uuid := instance[strings.Index(instance, instanceSep)+len(instanceSep):]
	for _, v := range app.PersistentVolumes() {
		d := scalar(*disk, v.Persistent.Size)
		nr.reserve = append(nr.reserve, d)
		vol := d
		id := volumeID(app.ID, v.ContainerPath, uuid)
		mode := mesos.RW
		vol.Disk = &mesos.Resource_DiskInfo{
			Persistence: &mesos.Resource_DiskInfo_Persistence{ID: id, Principal: resv.Principal},
			Volume:      &mesos.Volume{ContainerPath: v.ContainerPath, Mode: &mode},
		}
		nr.volumes = append(nr.volumes, vol)
		nr.task = append(nr.task, vol)
	}
	return nr
}

// teardownOps are the operations that give an instance's labelled
// resources back: DESTROY of its volumes, then UNRESERVE of everything
// (the volumes' disk as plain reserved disk once destroyed). Pure.
func teardownOps(held []mesos.Resource) []mesos.Offer_Operation {
	var vols, all []mesos.Resource
	for _, r := range held {
		if r.Disk != nil && r.Disk.Persistence != nil {
			vols = append(vols, r)
			r.Disk = nil
		}
		all = append(all, r)
	}
	var ops []mesos.Offer_Operation
	if len(vols) > 0 {
		ops = append(ops, mesos.Offer_Operation{Type: mesos.Offer_Operation_DESTROY, Destroy: &mesos.Offer_Operation_Destroy{Volumes: vols}})
	}
	return append(ops, mesos.Offer_Operation{Type: mesos.Offer_Operation_UNRESERVE, Unreserve: &mesos.Offer_Operation_Unreserve{Resources: all}})
}

// reservedPorts are the host ports of an instance's reserved resources in
// the app's port index order: fixed host ports where the app asks for
// them, the others in ascending order, as the first placement assigned
// them (offers.Place takes dynamic ports lowest first; portsByIndex).
func reservedPorts(app *appspec.App, held []mesos.Resource) []uint64 {
	var all []uint64
	for _, r := range held {
		if r.Name != "ports" {
			continue
		}
		for _, pr := range r.GetRanges().GetRange() {
			for p := pr.Begin; p <= pr.End; p++ {
				all = append(all, p)
			}
		}
	}
	ps := app.PortList()
	fixed := map[uint64]bool{}
	for _, p := range ps {
		if p.HostPort != 0 {
			fixed[uint64(p.HostPort)] = true
		}
	}
	var dyn []uint64
	for _, p := range all {
		if !fixed[p] {
			dyn = append(dyn, p)
		}
	}
	slices.Sort(dyn)
	out := make([]uint64, 0, len(ps))
	for _, p := range ps {
		switch {
		case p.HostPort != 0:
			out = append(out, uint64(p.HostPort))
		case len(dyn) > 0:
			out = append(out, dyn[0])
			dyn = dyn[1:]
		}
	}
	return out
}

// offerAction is what one offer's labelled reservation is used for.
type offerAction struct {
	instance string
	held     []mesos.Resource
	relaunch bool // launch the instance's next task on held
	teardown bool // destroy and unreserve held
}

// reservationView is what planOffer needs to know of one reservation.
type reservationView struct {
	appID string
	busy  bool // a task of it is active
	wipe  bool // to be destroyed
}

// planOffer decides what each labelled reservation in one offer is for:
// a free reservation of an instance its app wants back is relaunched
// (wants says how many more tasks each app wants; it is decremented); one
// marked to wipe, or of no known instance when orphans may be judged, is
// torn down; the rest stay reserved. Instances are visited in id order.
// Pure.
func planOffer(o *mesos.Offer, known map[string]reservationView, wants map[string]int, judgeOrphans bool) []offerAction {
	held := offerReservations(o)
	ids := make([]string, 0, len(held))
	for id := range held {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []offerAction
	for _, id := range ids {
		rv, ok := known[id]
		switch {
		case !ok && judgeOrphans:
			out = append(out, offerAction{instance: id, held: held[id], teardown: true})
		case !ok:
		case rv.busy:
			// Its task runs on it: what is offered is only what the task
			// does not use (none, normally); nothing to do.
		case rv.wipe:
			out = append(out, offerAction{instance: id, held: held[id], teardown: true})
		case wants[rv.appID] > 0:
			wants[rv.appID]--
			out = append(out, offerAction{instance: id, held: held[id], relaunch: true})
		}
	}
	return out
}

// LocalVolume is one persistent volume of a resident instance, as
// Marathon's task JSON shows it (localVolumes).
type LocalVolume struct {
	ContainerPath string
	PersistenceID string
}

// LocalVolumes are the persistent volumes of the instance of taskID (a
// task of app, or the last task of a suspended instance): their ids are
// Marathon's, <app>#<containerPath>#<instance uuid>, as planReservation
// makes them. Nil for apps without persistent volumes.
func LocalVolumes(app *appspec.App, taskID string) []LocalVolume {
	inst, _, ok := splitTaskID(taskID)
	if !ok || app == nil {
		return nil
	}
	uuid := inst[strings.Index(inst, instanceSep)+len(instanceSep):]
	var out []LocalVolume
	for _, v := range app.PersistentVolumes() {
		out = append(out, LocalVolume{ContainerPath: v.ContainerPath, PersistenceID: volumeID(app.ID, v.ContainerPath, uuid)})
	}
	return out
}

func volumeID(appID, containerPath, uuid string) string {
	return TaskIDPrefix(appID) + "#" + containerPath + "#" + uuid
}
