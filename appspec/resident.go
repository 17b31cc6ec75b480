package appspec

import (
	"encoding/json"
	"fmt"
	"strings"
)

// PersistentVolume is Marathon's persistent object of a local persistent
// volume: Size MiB of the agent's root disk, reserved and created (Mesos's
// RESERVE and CREATE) for one instance and given to each of its tasks.
// Only type "root" is supported: "path" and "mount" disks need agents with
// such disks (Mesos's multiple disk support), which Flotilla's agents do
// not offer, so they are refused by name, as are maxSize and constraints
// (which only select among such disks) and profileName (CSI).
type PersistentVolume struct {
	Type string  `json:"type,omitempty"` // root (default)
	Size float64 `json:"size"`           // MiB
}

// Residency is Marathon's residency object. WAIT_FOREVER, Marathon's only
// working behaviour, keeps a resident instance's reservation when its
// agent is lost: the instance waits for that agent to come back.
type Residency struct {
	RelaunchEscalationTimeoutSeconds float64 `json:"relaunchEscalationTimeoutSeconds,omitempty"`
	TaskLostBehavior                 string  `json:"taskLostBehavior,omitempty"`
}

// Resident-app defaults (Marathon's AppNormalization for apps with
// persistent volumes): a roll kills an old task before its replacement
// starts (it takes over the old one's reservation), and an unreachable
// instance is never replaced elsewhere (its data is on that agent).
const (
	ResidentMinimumHealthCapacity = 0.5
	ResidentMaximumOverCapacity   = 0.0
	WaitForever                   = "WAIT_FOREVER"
	// MaxResidentIDLength leaves a resident app's task ids room for
	// incarnations up to 10^6 (MaxIDLength counts ._app.1).
	MaxResidentIDLength = MaxIDLength - 6
)

// IsResident says whether the app's instances are resident: it has a
// persistent volume, so each instance is pinned to the reservation and
// volume made for it on its first launch.
func (a *App) IsResident() bool {
	return len(a.PersistentVolumes()) > 0
}

// PersistentVolumes are the app's local persistent volumes, in order.
func (a *App) PersistentVolumes() []Volume {
	if a.Container == nil {
		return nil
	}
	var out []Volume
	for _, v := range a.Container.Volumes {
		if v.Persistent != nil {
			out = append(out, v)
		}
	}
	return out
}

// residentDefaults applies Marathon's defaults for resident apps to the
// fields the JSON b left out: residency WAIT_FOREVER, upgradeStrategy
// {0.5, 0}, unreachableStrategy disabled. Decode calls it, since only the
// JSON tells an absent field from one given with the general default.
func (a *App) residentDefaults(b []byte) {
	if !a.IsResident() {
		if a.Residency != nil && *a.Residency == (Residency{}) {
			a.Residency = nil // {} as an export carries it: nothing asked
		}
		return
	}
	var given map[string]json.RawMessage
	if json.Unmarshal(b, &given) != nil {
		return
	}
	if _, ok := given["residency"]; !ok || a.Residency == nil {
		a.Residency = &Residency{RelaunchEscalationTimeoutSeconds: 3600, TaskLostBehavior: WaitForever}
	}
	if a.Residency.TaskLostBehavior == "" {
		a.Residency.TaskLostBehavior = WaitForever
	}
	if _, ok := given["upgradeStrategy"]; !ok {
		a.UpgradeStrategy = UpgradeStrategy{MinimumHealthCapacity: ResidentMinimumHealthCapacity, MaximumOverCapacity: ResidentMaximumOverCapacity}
	}
	if _, ok := given["unreachableStrategy"]; !ok {
		a.UnreachableStrategy = UnreachableStrategy{Disabled: true}
	}
}

// validateResident checks persistent volumes and residency as Marathon
// does (AppValidation, PersistentVolumeValidation), plus what Flotilla
// needs: a framework role other than "*" to reserve under, unreserved
// resources to reserve.
func (a *App) validateResident(v *ValidationError, l Limits) {
	if !a.IsResident() {
		if a.Residency != nil {
			v.add("/residency", "only apps with a persistent volume (container.volumes[].persistent) are resident")
		}
		return
	}
	for i, vol := range a.Container.Volumes {
		if vol.Persistent == nil {
			continue
		}
		p := fmt.Sprintf("/container/volumes/%d", i)
		if vol.HostPath != "" {
			v.add(p+"/hostPath", "a persistent volume has no hostPath: Mesos creates it on the agent")
		}
		if vol.Mode != "RW" {
			v.addf(p+"/mode", "a persistent volume must be RW (got %q)", vol.Mode)
		}
		if cp := vol.ContainerPath; cp == "" || strings.Contains(cp, "/") || cp == "." || cp == ".." {
			v.addf(p+"/containerPath", "a persistent volume's containerPath is one directory name relative to the sandbox, without / (got %q), as in Marathon", cp)
		}
		switch vol.Persistent.Type {
		case "", "root":
		case "path", "mount":
			v.addf(p+"/persistent/type", "%s disks are not supported: Flotilla's agents offer their root disk only; use type root", vol.Persistent.Type)
		default:
			v.addf(p+"/persistent/type", "must be root, path or mount (got %q); only root is supported", vol.Persistent.Type)
		}
		if !(vol.Persistent.Size > 0) || !finite(vol.Persistent.Size) {
			v.addf(p+"/persistent/size", "must be a size in MiB greater than 0 (got %v)", vol.Persistent.Size)
		}
	}
	if r := a.Residency; r != nil && r.TaskLostBehavior != "" && r.TaskLostBehavior != WaitForever {
		v.addf("/residency/taskLostBehavior", "only WAIT_FOREVER is supported (got %q): a lost instance waits for its agent, as in Marathon, which never implemented RELAUNCH_AFTER_TIMEOUT; wipe the task to give up its data", r.TaskLostBehavior)
	}
	u := a.UpgradeStrategy
	if u.MaximumOverCapacity != 0 {
		v.addf("/upgradeStrategy/maximumOverCapacity", "must be 0 for an app with persistent volumes (got %v): a new task takes over an old one's reservation and volume", u.MaximumOverCapacity)
	}
	if u.MinimumHealthCapacity > ResidentMinimumHealthCapacity {
		v.addf("/upgradeStrategy/minimumHealthCapacity", "must be at most 0.5 for an app with persistent volumes (got %v), as in Marathon", u.MinimumHealthCapacity)
	}
	if l.Role == "" || l.Role == Unreserved {
		v.add("/container/volumes", "persistent volumes need resources reserved under a role other than *: start Flotilla with --mesos-role <role> (Marathon's --mesos_role)")
	}
	if len(a.AcceptedResourceRoles) > 0 && !contains(a.AcceptedResourceRoles, Unreserved) {
		v.add("/acceptedResourceRoles", `must contain "*" for an app with persistent volumes: only unreserved resources can be reserved for an instance`)
	}
	if a.Pod != nil {
		v.add("/container/volumes", "pods cannot have persistent volumes")
	}
	if len(a.ID) > MaxResidentIDLength {
		v.addf("/id", "an app with persistent volumes has an id of at most %d characters (got %d): its relaunched tasks count incarnations in their ids (._app.<n>)", MaxResidentIDLength, len(a.ID))
	}
}

// ResidentUpdate checks a change of an app that is resident before or
// after it as Marathon does (AppDefinition.residentUpdateIsValid): every
// instance's reservation holds its volumes and resources, and a relaunch
// runs on exactly those, so neither may change. Delete the app (or wipe
// its instances) to start over with others. An app cannot become resident
// or stop being resident either: the scheduler takes every task of a
// resident app for one that holds a reservation (a new leader adopting
// it keeps its instance's reservation). Nil when prev is nil (a new app)
// or neither is resident.
func ResidentUpdate(prev, next *App) error {
	if prev == nil || next == nil || (!prev.IsResident() && !next.IsResident()) {
		return nil
	}
	v := &ValidationError{}
	if prev.IsResident() != next.IsResident() {
		v.add("/container/volumes", "an app cannot gain or lose persistent volumes: its tasks would not match their reservations; create a new app (or delete this one, which destroys its volumes)")
		return v
	}
	pv, nv := prev.PersistentVolumes(), next.PersistentVolumes()
	same := len(pv) == len(nv)
	for i := 0; same && i < len(pv); i++ {
		a, b := pv[i], nv[i]
		same = a.ContainerPath == b.ContainerPath && a.Mode == b.Mode && *a.Persistent == *b.Persistent
	}
	if !same {
		v.add("/container/volumes", "Persistent volumes can not be changed! Each instance's volumes were created on its agent; delete the app or wipe its tasks to have others")
	}
	if prev.CPUs != next.CPUs || prev.Mem != next.Mem || prev.Disk != next.Disk || prev.GPUs != next.GPUs || !samePorts(prev.PortList(), next.PortList()) {
		v.add("/", "Resident Tasks may not change resource requirements! cpus, mem, disk, gpus and ports are reserved for each instance as they were")
	}
	if len(v.Details) == 0 {
		return nil
	}
	return v
}

// samePorts: as many ports, the same fixed host ports.
func samePorts(a, b []Port) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].HostPort != b[i].HostPort {
			return false
		}
	}
	return true
}
