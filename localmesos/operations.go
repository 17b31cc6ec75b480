//lint:file-ignore ST1005 operation validation messages are Mesos's own, word for word (master/validation.cpp, common/resources.cpp), so frameworks and logs read the same text

package localmesos

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"
)

// RESERVE, UNRESERVE, CREATE and DESTROY in an ACCEPT, as the Mesos
// master's _accept applies them: in order, each validated against the
// framework and the resources offered as the earlier operations left them
// (so RESERVE + CREATE + LAUNCH in one ACCEPT launches on the new volume),
// each applied whole or dropped whole. A dropped operation changes
// nothing and gets no reply (Master::drop: "the framework will find out
// that the operation was dropped through subsequent offers"), except an
// operation with an id from an HTTP framework, which gets an
// UPDATE_OPERATION_STATUS OPERATION_ERROR with the reason. The agent's
// total and free resources change with the operation, so the reserved
// resources and volumes outlive the offer and every task that uses them,
// are offered only to frameworks of their role, and show in /master/state.

// conversion is one resource's change: what the operation consumes from
// the offer and what it gives back in its place.
type conversion struct{ consumed, produced rset }

// operationLocked validates and applies op to agent a, offered to fw under
// role with avail left; it returns what is left after it.
func (m *Master) operationLocked(fw *framework, a *agent, role string, op *mesos.Offer_Operation, avail rset, log *logrus.Entry) rset {
	convs, err := m.validateOperation(fw, a, role, op)
	trial := avail.clone()
	if err == nil {
		for _, c := range convs {
			if !trial.contains(c.consumed) {
				err = fmt.Errorf("Invalid %s Operation: %s does not contain %s", op.Type.String(), trial, c.consumed)
				break
			}
			trial.sub(c.consumed)
			trial.add(c.produced)
		}
	}
	if err == nil && op.ID != nil {
		// Operation feedback (an id on the operation) is for operations
		// on resource providers' resources; these agents have none.
		err = fmt.Errorf("operation feedback is not supported by localmesos: its agents have no resource providers")
	}
	if err != nil {
		m.dropOperation(fw, op, err.Error(), log)
		return avail
	}
	for _, c := range convs {
		a.total.sub(c.consumed)
		a.total.add(c.produced)
		a.free.sub(c.consumed)
		a.free.add(c.produced)
	}
	a.total.prune()
	a.free.prune()
	trial.prune()
	log.WithField("operation", op.Type.String()).Info("operation applied")
	m.volumeDirsLocked(a, op, log)
	return trial
}

// dropOperation is Master::drop for an offer operation.
func (m *Master) dropOperation(fw *framework, op *mesos.Offer_Operation, msg string, log *logrus.Entry) {
	log.WithFields(logrus.Fields{"operation": op.Type.String(), "reason": msg}).Warn("dropping operation")
	if op.ID == nil {
		return
	}
	id := *op.ID
	fw.send(&scheduler.Event{Type: scheduler.Event_UPDATE_OPERATION_STATUS, UpdateOperationStatus: &scheduler.Event_UpdateOperationStatus{
		Status: mesos.OperationStatus{OperationID: &id, State: mesos.OPERATION_ERROR, Message: strPtr(msg)}}})
}

func (m *Master) validateOperation(fw *framework, a *agent, role string, op *mesos.Offer_Operation) ([]conversion, error) {
	switch op.Type {
	case mesos.Offer_Operation_RESERVE:
		if op.Reserve == nil {
			return nil, fmt.Errorf("A RESERVE offer operation must have the Offer.Operation.reserve field set.")
		}
		return validateReserve(fw, role, op.Reserve.Resources)
	case mesos.Offer_Operation_UNRESERVE:
		if op.Unreserve == nil {
			return nil, fmt.Errorf("An UNRESERVE offer operation must have the Offer.Operation.unreserve field set.")
		}
		return validateUnreserve(op.Unreserve.Resources)
	case mesos.Offer_Operation_CREATE:
		if op.Create == nil {
			return nil, fmt.Errorf("A CREATE offer operation must have the Offer.Operation.create field set.")
		}
		return validateCreate(a, role, op.Create.Volumes)
	case mesos.Offer_Operation_DESTROY:
		if op.Destroy == nil {
			return nil, fmt.Errorf("A DESTROY offer operation must have the Offer.Operation.destroy field set.")
		}
		return validateDestroy(a, op.Destroy.Volumes)
	}
	return nil, fmt.Errorf("operation %s is not supported by localmesos", op.Type.String())
}

// parseOne parses and accounts one resource, the allocation role
// injected from the offer when the framework left it out (Mesos's
// injectAllocationInfo).
func parseOne(r mesos.Resource, offerRole string) (parsedResource, rset, error) {
	p, err := parseResource(&r)
	if err != nil {
		return p, rset{}, fmt.Errorf("Invalid resources: %w", err)
	}
	if p.allocRole == "" {
		p.allocRole = offerRole
	}
	s, err := fromMesos([]mesos.Resource{r})
	if err != nil {
		return p, rset{}, fmt.Errorf("Invalid resources: %w", err)
	}
	return p, s, nil
}

// derived accounts a resource the operation derived from one that
// parsed (its reservation or disk stripped).
func derived(r mesos.Resource, convs []conversion, from rset) ([]conversion, error) {
	s, err := fromMesos([]mesos.Resource{r})
	if err != nil {
		return nil, fmt.Errorf("Invalid resources: %w", err)
	}
	return append(convs, conversion{consumed: from, produced: s}), nil
}

func unreserved(r mesos.Resource) mesos.Resource {
	r.Role, r.Reservation, r.Reservations, r.Disk, r.AllocationInfo = nil, nil, nil, nil, nil
	return r
}

func withoutDisk(r mesos.Resource) mesos.Resource {
	r.Disk, r.AllocationInfo = nil, nil
	return r
}

// rolesString renders a role set as stout's stringify does: { a, b }.
func rolesString(roles []string) string {
	s := append([]string(nil), roles...)
	sort.Strings(s)
	return "{ " + strings.Join(s, ", ") + " }"
}

func hasRole(fw *framework, role string) bool {
	for _, r := range fw.roles() {
		if r == role {
			return true
		}
	}
	return false
}

// validateReserve is validation::operation::validate(Reserve): each
// resource dynamically reserved, not refined (no RESERVATION_REFINEMENT
// on these agents), allocated to its reservation role, which is one of
// the framework's, and not a persistent volume. No principal is checked:
// localmesos authenticates nobody, and Mesos checks the authenticated one.
func validateReserve(fw *framework, role string, rs []mesos.Resource) ([]conversion, error) {
	var out []conversion
	for _, r := range rs {
		p, s, err := parseOne(r, role)
		if err != nil {
			return nil, err
		}
		str := s.String()
		switch {
		case !p.dynamic:
			return nil, fmt.Errorf("Resource %s is not dynamically reserved", str)
		case p.refined:
			return nil, fmt.Errorf("Resource %s with reservation refinement cannot be reserved on an agent without RESERVATION_REFINEMENT capability", str)
		case p.allocRole != p.role:
			return nil, fmt.Errorf("A reserve operation was attempted for a resource with role '%s', but the resource was allocated to role '%s'", p.role, p.allocRole)
		case !hasRole(fw, p.allocRole):
			return nil, fmt.Errorf("A reserve operation was attempted for a resource allocated to role '%s', but the framework only has roles '%s'", p.allocRole, rolesString(fw.roles()))
		case p.persistent():
			return nil, fmt.Errorf("A persistent volume %s must already be reserved", str)
		}
		u, err := fromMesos([]mesos.Resource{unreserved(r)})
		if err != nil {
			return nil, fmt.Errorf("Invalid resources: %w", err)
		}
		out = append(out, conversion{consumed: u, produced: s})
	}
	return out, nil
}

// validateUnreserve: each resource dynamically reserved and not a
// persistent volume (destroy it first).
func validateUnreserve(rs []mesos.Resource) ([]conversion, error) {
	var out []conversion
	for _, r := range rs {
		p, s, err := parseOne(r, "")
		if err != nil {
			return nil, err
		}
		switch {
		case !p.dynamic:
			return nil, fmt.Errorf("Resource %s is not dynamically reserved", s)
		case p.persistent():
			return nil, fmt.Errorf("A dynamically reserved persistent volume %s cannot be unreserved directly. Please destroy the persistent volume first then unreserve the resource", s)
		}
		if out, err = derived(unreserved(r), out, s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// persistentVolume is validatePersistentVolume's check of one resource.
func persistentVolume(r *mesos.Resource, s rset) error {
	switch {
	case r.Disk == nil:
		return fmt.Errorf("Not a persistent volume: Resource %s does not have DiskInfo", s)
	case r.Disk.Persistence == nil:
		return fmt.Errorf("Not a persistent volume: 'persistence' is not set in DiskInfo")
	case r.Disk.Volume == nil:
		return fmt.Errorf("Not a persistent volume: Expecting 'volume' to be set for persistent volume")
	case r.Disk.Volume.GetMode() == mesos.RO && r.Disk.Volume.Mode != nil:
		return fmt.Errorf("Not a persistent volume: Read-only persistent volume not supported")
	}
	return nil
}

// validateCreate: each a persistent volume on reserved disk, its
// persistence id unique per role on the agent (counting the volumes it
// already has and the others in the operation).
func validateCreate(a *agent, role string, rs []mesos.Resource) ([]conversion, error) {
	ids := a.volumeIDs()
	var out []conversion
	for i := range rs {
		r := rs[i]
		p, s, err := parseOne(r, role)
		if err != nil {
			return nil, err
		}
		if err := persistentVolume(&r, s); err != nil {
			return nil, err
		}
		if p.refined {
			return nil, fmt.Errorf("Volume %s with reservation refinement cannot be created on an agent without RESERVATION_REFINEMENT capability", s)
		}
		id := p.role + "/" + p.volume.Persistence.ID
		if ids[id] {
			return nil, fmt.Errorf("Persistence ID '%s' is not unique", p.volume.Persistence.ID)
		}
		ids[id] = true
		u, err := fromMesos([]mesos.Resource{withoutDisk(r)})
		if err != nil {
			return nil, fmt.Errorf("Invalid resources: %w", err)
		}
		out = append(out, conversion{consumed: u, produced: s})
	}
	return out, nil
}

// validateDestroy: each a persistent volume the agent has and no task
// uses.
func validateDestroy(a *agent, rs []mesos.Resource) ([]conversion, error) {
	var out []conversion
	for i := range rs {
		r := rs[i]
		_, s, err := parseOne(r, "")
		if err != nil {
			return nil, err
		}
		if err := persistentVolume(&r, s); err != nil {
			return nil, err
		}
		if !a.total.contains(s) {
			return nil, fmt.Errorf("Persistent volumes not found")
		}
		if !a.free.contains(s) {
			return nil, fmt.Errorf("Persistent volumes in use")
		}
		if out, err = derived(withoutDisk(r), out, s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// volumeIDs are the agent's persistent volumes as "role/id".
func (a *agent) volumeIDs() map[string]bool {
	out := map[string]bool{}
	for k, v := range a.total.scalars {
		if v <= epsilon {
			continue
		}
		if id := keyIdentity(k); id != nil && id.Disk != nil && id.Disk.Persistence != nil {
			_, role := splitKey(k)
			out[role+"/"+id.Disk.Persistence.ID] = true
		}
	}
	return out
}

// volumeDirsLocked creates a CREATEd volume's directory and takes a
// DESTROYed one's away, as the Mesos agent does when it checkpoints the
// operation: a DESTROY deletes the data. Both are one or two system calls
// under the master's lock (a mkdir; a rename out of the volume's path);
// the renamed directory is deleted outside it, however large it is.
func (m *Master) volumeDirsLocked(a *agent, op *mesos.Offer_Operation, log *logrus.Entry) {
	if a.workDir == "" {
		return
	}
	switch op.Type {
	case mesos.Offer_Operation_CREATE:
		for _, r := range op.Create.Volumes {
			dir := a.volumePath(reservationRole(&r), r.Disk.Persistence.ID)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				log.WithError(err).WithField("dir", dir).Error("create persistent volume directory; tasks using it will fail to start")
			}
		}
	case mesos.Offer_Operation_DESTROY:
		for _, r := range op.Destroy.Volumes {
			dir := a.volumePath(reservationRole(&r), r.Disk.Persistence.ID)
			trash := filepath.Join(a.workDir, "volumes", ".destroyed", uuidString(m.newUUID()))
			if err := os.MkdirAll(filepath.Dir(trash), 0o755); err != nil {
				log.WithError(err).WithField("dir", dir).Error("destroy persistent volume: its data stays on disk")
				continue
			}
			if err := os.Rename(dir, trash); err != nil {
				if !os.IsNotExist(err) {
					log.WithError(err).WithField("dir", dir).Error("destroy persistent volume: its data stays on disk")
				}
				continue
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				if err := os.RemoveAll(trash); err != nil {
					log.WithError(err).WithField("dir", trash).Warn("destroyed persistent volume's data left on disk")
				}
			}()
		}
	}
}

// volumeMounts gives the executor a task's persistent volumes as host
// volumes at their container paths (Mesos's filesystem/posix isolator
// links them into the sandbox, the docker containerizer binds them): the
// executor's task info gets a copy of the container with them appended;
// a task without a container gets a MESOS one. The recorded task keeps
// the framework's info.
func (a *agent) volumeMounts(ti mesos.TaskInfo, res rset) mesos.TaskInfo {
	if a.workDir == "" {
		return ti
	}
	var vols []mesos.Volume
	keys := make([]string, 0, len(res.scalars))
	for k := range res.scalars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		id := keyIdentity(k)
		if res.scalars[k] <= epsilon || id == nil || id.Disk == nil || id.Disk.Persistence == nil {
			continue
		}
		_, role := splitKey(k)
		mode := id.Disk.Volume.GetMode()
		hp := a.volumePath(role, id.Disk.Persistence.ID)
		vols = append(vols, mesos.Volume{ContainerPath: id.Disk.Volume.ContainerPath, HostPath: &hp, Mode: &mode})
	}
	if len(vols) == 0 {
		return ti
	}
	var c mesos.ContainerInfo
	if ti.Container != nil {
		c = *ti.Container
	} else {
		c.Type = mesos.ContainerInfo_MESOS.Enum()
	}
	c.Volumes = append(append([]mesos.Volume(nil), c.Volumes...), vols...)
	ti.Container = &c
	return ti
}

// prune drops the keys an operation emptied, so that /master/state lists
// no reservation of nothing.
func (s rset) prune() {
	for k, v := range s.scalars {
		if v <= epsilon {
			delete(s.scalars, k)
		}
	}
	for k, v := range s.ranges {
		if len(v) == 0 {
			delete(s.ranges, k)
		}
	}
}

// reservedFull is /master/state's reserved_resources_full: role -> the
// reserved resources with their reservations and volumes, in the
// refined format.
func reservedFull(s rset) map[string]any {
	out := map[string]any{}
	for _, r := range s.toMesos("", true) {
		role := ""
		if n := len(r.Reservations); n > 0 {
			role = r.Reservations[n-1].GetRole()
		}
		if role == "" {
			continue
		}
		list, _ := out[role].([]mesos.Resource)
		out[role] = append(list, r)
	}
	return out
}
