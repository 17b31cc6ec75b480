//lint:file-ignore ST1005 resource validation messages are Mesos's own, word for word (common/resources.cpp, master/validation.cpp), so frameworks see the same text

package localmesos

import (
	"encoding/base64"
	"fmt"
	"sort"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Dynamic reservations and persistent volumes. The master's accounting
// (rset) keys a resource by name and role (roles.go); a dynamically
// reserved resource, or a persistent volume, carries more identity than
// that — the reservation's principal and labels (Marathon finds its
// reservations by the labels marathon_framework_id and marathon_task_id),
// the volume's persistence id and container path — and Mesos never adds
// or subtracts two resources whose identities differ. So such a key has
// the identity appended after keyMeta, as the base64 of a protobuf Resource
// holding only the normalised reservations and disk: equal identities give
// equal keys, and contains/sub/add keep working unchanged.
//
// The agents behave as Mesos agents without the RESERVATION_REFINEMENT and
// HIERARCHICAL_ROLE capabilities: one reservation per resource, roles
// without '/'. Their only disk is the ROOT disk (no PATH or MOUNT
// sources), and volumes are not SHARED.

// keyMeta separates a key's name(role) from its identity; a control
// character, which Mesos's role validation refuses, so no role holds it.
const keyMeta = "\x1f"

// parsedResource is one Mesos resource as the master understands it.
type parsedResource struct {
	key       string
	name      string
	role      string // "*" when unreserved
	dynamic   bool   // the last reservation is DYNAMIC
	refined   bool   // more than one reservation
	volume    *mesos.Resource_DiskInfo
	allocRole string // the resource's allocation_info role, "" when unset
}

func (p parsedResource) persistent() bool { return p.volume != nil && p.volume.Persistence != nil }

// parseResource validates r's reservation and disk as Mesos's
// Resources::validate and validateDiskInfo do (their messages), and gives
// its accounting key.
func parseResource(r *mesos.Resource) (parsedResource, error) {
	p := parsedResource{name: r.Name, role: "*"}
	if ai := r.AllocationInfo; ai != nil && ai.Role != nil {
		p.allocRole = *ai.Role
	}
	var dyn *mesos.Resource_ReservationInfo
	if len(r.Reservations) == 0 {
		if r.Role != nil && *r.Role != "" {
			if err := validRole(*r.Role); err != nil {
				return p, err
			}
			p.role = *r.Role
		}
		if rv := r.Reservation; rv != nil {
			if rv.Type != nil {
				return p, fmt.Errorf("'Resource.ReservationInfo.type' must not be set for the 'Resource.reservation' field")
			}
			if rv.Role != nil {
				return p, fmt.Errorf("'Resource.ReservationInfo.role' must not be set for the 'Resource.reservation' field")
			}
			if p.role == "*" {
				return p, fmt.Errorf("Invalid reservation: role \"*\" cannot be dynamically reserved")
			}
			dyn = &mesos.Resource_ReservationInfo{Principal: rv.Principal, Labels: rv.Labels}
		}
	} else {
		ancestor := ""
		for i := range r.Reservations {
			rv := &r.Reservations[i]
			if rv.Type == nil {
				return p, fmt.Errorf("Invalid reservation: 'Resource.ReservationInfo.type' field must be set.")
			}
			if rv.Role == nil {
				return p, fmt.Errorf("Invalid reservation: 'Resource.ReservationInfo.role' field must be set.")
			}
			if err := validRole(*rv.Role); err != nil {
				return p, err
			}
			if *rv.Role == "*" {
				return p, fmt.Errorf("Invalid reservation: role \"*\" cannot be reserved")
			}
			if i > 0 {
				if *rv.Type == mesos.Resource_ReservationInfo_STATIC {
					return p, fmt.Errorf("Invalid refined reservation: A refined reservation cannot be STATIC")
				}
				if !strings.HasPrefix(*rv.Role, ancestor+"/") {
					return p, fmt.Errorf("Invalid refined reservation: role '%s' is not a refinement of '%s'", *rv.Role, ancestor)
				}
			}
			ancestor = *rv.Role
		}
		n := len(r.Reservations)
		if n == 1 && r.Role != nil && *r.Role != r.Reservations[0].GetRole() {
			return p, fmt.Errorf("Invalid resource format: 'Resource.role' field with '%s' does not match the role '%s' in 'Resource.reservations'", *r.Role, r.Reservations[0].GetRole())
		}
		if n > 1 && r.Role != nil {
			return p, fmt.Errorf("Invalid resource format: 'Resource.role' must not be set if there is more than one reservation in 'Resource.reservations'")
		}
		last := r.Reservations[n-1]
		p.role = last.GetRole()
		p.refined = n > 1
		if last.GetType() == mesos.Resource_ReservationInfo_DYNAMIC {
			dyn = &mesos.Resource_ReservationInfo{Principal: last.Principal, Labels: last.Labels}
		}
	}
	if r.Shared != nil {
		return p, fmt.Errorf("shared resources are not supported by localmesos (its agents have no shared persistent volumes)")
	}
	if r.Disk != nil {
		if r.Name != "disk" {
			return p, fmt.Errorf("DiskInfo should not be set for %s resource", r.Name)
		}
		d, err := normDisk(r.Disk, p.role == "*")
		if err != nil {
			return p, fmt.Errorf("Invalid DiskInfo: %w", err)
		}
		p.volume = d
	}
	p.dynamic = dyn != nil
	p.key = resKey(r.Name, p.role)
	if dyn != nil || p.volume != nil {
		// Name and type only because the protobuf requires them.
		meta := mesos.Resource{Name: r.Name, Type: mesos.SCALAR.Enum(), Disk: p.volume}
		if dyn != nil {
			meta.Reservations = []mesos.Resource_ReservationInfo{normReservation(dyn, p.role)}
		}
		b, err := meta.Marshal()
		if err != nil {
			return p, fmt.Errorf("resource %q: %w", r.Name, err)
		}
		p.key += keyMeta + base64.RawStdEncoding.EncodeToString(b)
	}
	return p, nil
}

// normReservation is a dynamic reservation in the refined format with its
// labels sorted (Mesos compares labels as a set) and empty fields unset.
func normReservation(rv *mesos.Resource_ReservationInfo, role string) mesos.Resource_ReservationInfo {
	out := mesos.Resource_ReservationInfo{Type: mesos.Resource_ReservationInfo_DYNAMIC.Enum(), Role: strPtr(role)}
	if rv.GetPrincipal() != "" {
		out.Principal = strPtr(rv.GetPrincipal())
	}
	if ls := rv.GetLabels().GetLabels(); len(ls) > 0 {
		cp := append([]mesos.Label(nil), ls...)
		sort.Slice(cp, func(i, j int) bool {
			if cp[i].Key != cp[j].Key {
				return cp[i].Key < cp[j].Key
			}
			return cp[i].GetValue() < cp[j].GetValue()
		})
		out.Labels = &mesos.Labels{Labels: cp}
	}
	return out
}

// normDisk follows validateDiskInfo: a persistent volume is reserved, has
// a volume without host_path and a valid persistence id; a non-persistent
// volume or an empty DiskInfo is refused; disk sources are not supported.
func normDisk(d *mesos.Resource_DiskInfo, unreserved bool) (*mesos.Resource_DiskInfo, error) {
	if d.Source != nil {
		return nil, fmt.Errorf("disk sources (PATH, MOUNT) are not supported by localmesos: its agents have only their ROOT disk")
	}
	if d.Persistence == nil {
		if d.Volume != nil {
			return nil, fmt.Errorf("Non-persistent volume not supported")
		}
		return nil, fmt.Errorf("DiskInfo is set but empty")
	}
	if unreserved {
		return nil, fmt.Errorf("Persistent volumes cannot be created from unreserved resources")
	}
	if d.Volume == nil {
		return nil, fmt.Errorf("Expecting 'volume' to be set for persistent volume")
	}
	if d.Volume.HostPath != nil {
		return nil, fmt.Errorf("Expecting 'host_path' to be unset for persistent volume")
	}
	if d.Volume.Image != nil || d.Volume.Source != nil {
		return nil, fmt.Errorf("a persistent volume's 'volume' may hold only container_path and mode in localmesos")
	}
	id := d.Persistence.ID
	if err := validateID(id); err != nil {
		return nil, fmt.Errorf("Invalid persistence ID for persistent volume: %w", err)
	}
	if strings.ContainsRune(id, '\\') {
		return nil, fmt.Errorf("Invalid persistence ID for persistent volume: '\\' is not allowed")
	}
	mode := d.Volume.GetMode()
	if d.Volume.Mode == nil {
		mode = mesos.RW
	}
	out := &mesos.Resource_DiskInfo{
		Persistence: &mesos.Resource_DiskInfo_Persistence{ID: id},
		Volume:      &mesos.Volume{ContainerPath: d.Volume.ContainerPath, Mode: &mode},
	}
	if d.Persistence.GetPrincipal() != "" {
		out.Persistence.Principal = strPtr(d.Persistence.GetPrincipal())
	}
	return out, nil
}

// keyIdentity decodes the identity part of an accounting key: nil for a
// plain (unreserved or statically reserved) one.
func keyIdentity(k string) *mesos.Resource {
	i := strings.Index(k, keyMeta)
	if i < 0 {
		return nil
	}
	b, err := base64.RawStdEncoding.DecodeString(k[i+len(keyMeta):])
	if err != nil {
		return nil
	}
	var r mesos.Resource
	if r.Unmarshal(b) != nil {
		return nil
	}
	return &r
}

// stripMeta is k without its identity: "name(role)" or "name".
func stripMeta(k string) string {
	if i := strings.Index(k, keyMeta); i >= 0 {
		return k[:i]
	}
	return k
}

// withIdentity gives resource r (name, type and value already set) the
// reservation and disk of key k, in the refined format or the
// pre-refinement one (Resource.role plus reservation) for frameworks
// without RESERVATION_REFINEMENT, as the Mesos master downgrades offers.
func withIdentity(r *mesos.Resource, k string, refinement bool) {
	id := keyIdentity(k)
	if id == nil {
		return
	}
	r.Disk = id.Disk
	if len(id.Reservations) == 0 {
		return
	}
	rv := id.Reservations[0]
	if refinement {
		r.Role = nil
		r.Reservations = []mesos.Resource_ReservationInfo{rv}
		return
	}
	r.Role = strPtr(rv.GetRole())
	r.Reservations = nil
	r.Reservation = &mesos.Resource_ReservationInfo{Principal: rv.Principal, Labels: rv.Labels}
}

// keyString renders a key the way Mesos prints a resource's name part:
// disk(reservations: [(DYNAMIC,role,principal)])[id:path].
func keyString(k string) string {
	id := keyIdentity(k)
	if id == nil {
		return k
	}
	name, _ := splitKey(k)
	var b strings.Builder
	b.WriteString(name)
	for _, rv := range id.Reservations {
		fmt.Fprintf(&b, "(reservations: [(DYNAMIC,%s", rv.GetRole())
		if rv.GetPrincipal() != "" {
			b.WriteString("," + rv.GetPrincipal())
		}
		if ls := rv.GetLabels().GetLabels(); len(ls) > 0 {
			parts := make([]string, len(ls))
			for i, l := range ls {
				parts[i] = l.Key + ": " + l.GetValue()
			}
			b.WriteString(",{" + strings.Join(parts, ", ") + "}")
		}
		b.WriteString(")])")
	}
	if d := id.Disk; d != nil && d.Persistence != nil {
		fmt.Fprintf(&b, "[%s:%s]", d.Persistence.ID, d.GetVolume().GetContainerPath())
	}
	return b.String()
}

// volumePath is where agent a keeps persistent volume id of role: Mesos's
// <work_dir>/volumes/roles/<role>/<id>, under the agent's own directory
// since the local agents share one host.
func (a *agent) volumePath(role, id string) string {
	if a.workDir == "" {
		return ""
	}
	return strings.Join([]string{a.workDir, "volumes", "roles", role, id}, "/")
}
