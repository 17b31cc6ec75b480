package offers

import (
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Range is an inclusive range of port numbers, as Mesos sends them.
type Range struct{ Begin, End uint64 }

// Offer is a Mesos offer digested once (FromMesos) into what placement reads.
type Offer struct {
	ID, AgentID, Hostname string
	// Attributes holds text and scalar attributes as strings (rack -> r1);
	// ranges and sets are written as Marathon prints them ([a-b,c-d], {a,b}).
	Attributes map[string]string
	// Resources holds one entry per reservation: "*" for unreserved, or the
	// role the resources are reserved to.
	Resources []RoleResources
}

// RoleResources are the resources of an offer reserved to one role ("*" =
// unreserved). Mem and Disk are in MB, as Mesos counts them.
type RoleResources struct {
	Role string // reservation role; "*" = unreserved
	// AllocationRole is the role the offer was allocated to
	// (allocation_info.role); "" when the master sent none.
	AllocationRole  string
	CPUs, Mem, Disk float64
	GPUs            int
	Ports           []Range

	// resv echoes how the master described the reservation, so a task's
	// resources match the offer's exactly; nil means "Role only".
	resv *reservation
}

// reservation is the reservation part of a mesos.Resource, kept verbatim.
type reservation struct {
	role     *string                         // Resource.role (pre-refinement format)
	legacy   *mesos.Resource_ReservationInfo // Resource.reservation
	reserved []mesos.Resource_ReservationInfo
}

// FromMesos digests a Mesos offer. Resources a plain task cannot use
// (revocable, shared, from a resource provider, disks with a source or a
// persistent volume) and resources other than cpus, mem, disk, gpus and
// ports are left out. Entries of one name and reservation are merged.
func FromMesos(o *mesos.Offer) Offer {
	out := Offer{
		ID:       o.ID.Value,
		AgentID:  o.AgentID.Value,
		Hostname: o.Hostname,
	}
	if len(o.Attributes) > 0 {
		out.Attributes = make(map[string]string, len(o.Attributes)+2)
		for i := range o.Attributes {
			a := &o.Attributes[i]
			out.Attributes[a.Name] = attributeString(a)
		}
	}
	// The fault domain is matched like an attribute, under the names
	// Marathon's constraints use ("@region", "@zone"); a Mesos attribute
	// cannot start with "@", so the names never clash.
	if fd := o.GetDomain().GetFaultDomain(); fd != nil {
		if out.Attributes == nil {
			out.Attributes = make(map[string]string, 2)
		}
		out.Attributes["@region"] = fd.Region.Name
		out.Attributes["@zone"] = fd.Zone.Name
	}
	offerAlloc := ""
	if o.AllocationInfo != nil && o.AllocationInfo.Role != nil {
		offerAlloc = *o.AllocationInfo.Role
	}
	keys := make([]string, 0, 2) // reservation fingerprint per Resources entry
	for i := range o.Resources {
		r := &o.Resources[i]
		if r.Revocable != nil || r.Shared != nil || r.ProviderID != nil {
			continue
		}
		if r.Disk != nil && (r.Disk.Source != nil || r.Disk.Persistence != nil) {
			continue
		}
		if labelledReservation(r) {
			continue
		}
		role, key, resv := reservationOf(r)
		alloc := offerAlloc
		if r.AllocationInfo != nil && r.AllocationInfo.Role != nil {
			alloc = *r.AllocationInfo.Role
		}
		key += "\x00" + alloc
		j := 0
		for j < len(keys) && keys[j] != key {
			j++
		}
		if j == len(keys) {
			keys = append(keys, key)
			out.Resources = append(out.Resources, RoleResources{Role: role, AllocationRole: alloc, resv: resv})
		}
		rr := &out.Resources[j]
		switch r.Name {
		case "cpus":
			rr.CPUs += r.GetScalar().GetValue()
		case "mem":
			rr.Mem += r.GetScalar().GetValue()
		case "disk":
			rr.Disk += r.GetScalar().GetValue()
		case "gpus":
			rr.GPUs += int(math.Round(r.GetScalar().GetValue()))
		case "ports":
			for _, pr := range r.GetRanges().GetRange() {
				rr.Ports = append(rr.Ports, Range{Begin: pr.Begin, End: pr.End})
			}
		}
	}
	for i := range out.Resources {
		out.Resources[i].Ports = normalizeRanges(out.Resources[i].Ports)
	}
	return out
}

// labelledReservation: r is dynamically reserved with labels, which is how
// a resident instance's reservation is marked (Marathon's
// marathon_framework_id/marathon_task_id): only that instance may use it,
// so plain tasks leave it alone, as Marathon's ResourceSelector.any does.
func labelledReservation(r *mesos.Resource) bool {
	if r.Reservation != nil && len(r.Reservation.GetLabels().GetLabels()) > 0 {
		return true
	}
	for i := range r.Reservations {
		if len(r.Reservations[i].GetLabels().GetLabels()) > 0 {
			return true
		}
	}
	return false
}

// reservationOf returns the role a resource is reserved to ("*" if none), a
// fingerprint that tells reservations apart, and the fields to echo back.
func reservationOf(r *mesos.Resource) (string, string, *reservation) {
	role := "*"
	switch {
	case len(r.Reservations) > 0:
		if rl := r.Reservations[len(r.Reservations)-1].Role; rl != nil {
			role = *rl
		}
	case r.Role != nil:
		role = *r.Role
	}
	if r.Role == nil && r.Reservation == nil && len(r.Reservations) == 0 {
		return role, role, nil
	}
	var b strings.Builder
	b.WriteString(role)
	resv := &reservation{}
	if r.Role != nil {
		s := *r.Role
		resv.role = &s
	}
	if r.Reservation != nil {
		c := *r.Reservation
		resv.legacy = &c
		b.WriteString("\x00" + c.String())
	}
	if len(r.Reservations) > 0 {
		resv.reserved = append([]mesos.Resource_ReservationInfo(nil), r.Reservations...)
		for i := range r.Reservations {
			b.WriteString("\x00" + r.Reservations[i].String())
		}
	}
	return role, b.String(), resv
}

// attributeString writes an attribute the way Marathon compares it.
func attributeString(a *mesos.Attribute) string {
	switch a.Type {
	case mesos.SCALAR:
		return strconv.FormatFloat(a.GetScalar().GetValue(), 'f', -1, 64)
	case mesos.RANGES:
		rs := append([]mesos.Value_Range(nil), a.GetRanges().GetRange()...)
		sort.Slice(rs, func(i, j int) bool { return rs[i].Begin < rs[j].Begin })
		parts := make([]string, len(rs))
		for i, r := range rs {
			parts[i] = strconv.FormatUint(r.Begin, 10) + "-" + strconv.FormatUint(r.End, 10)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case mesos.SET:
		items := append([]string(nil), a.GetSet().GetItem()...)
		sort.Strings(items)
		return "{" + strings.Join(items, ",") + "}"
	default:
		return a.GetText().GetValue()
	}
}

// normalizeRanges sorts ranges and merges overlapping or adjacent ones, so
// a port is never counted twice.
func normalizeRanges(rs []Range) []Range {
	if len(rs) < 2 {
		return rs
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Begin < rs[j].Begin })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Begin <= last.End+1 && last.End != math.MaxUint64 {
			if r.End > last.End {
				last.End = r.End
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// Constraint is one Marathon constraint: field (hostname or an attribute),
// operator (UNIQUE CLUSTER GROUP_BY LIKE UNLIKE MAX_PER IS) and value.
// Build it with ParseConstraint, which checks it and compiles its regex
// once; Place compiles a hand-built one once per call, and a constraint
// that does not parse refuses every offer (UnfulfilledConstraint).
type Constraint struct {
	Field, Operator, Value string

	re  *regexp.Regexp // LIKE/UNLIKE, anchored for a full match
	num int            // GROUP_BY minimum number of groups, MAX_PER maximum
	ok  bool           // set by ParseConstraint
}

// Request is one task to place. Negative amounts count as zero;
// validating an app (cpus > 0 and so on) is the API's job.
type Request struct {
	ID              string // the caller's key (the future task id)
	App             string // constraints and spreading count the tasks of the same App
	CPUs, Mem, Disk float64
	GPUs            int
	Ports           int      // how many host ports from the offer's ranges (any)
	HostPorts       []uint64 // fixed host ports (requirePorts / hostPort != 0)
	Role            string   // "" = "*"
	// AcceptedRoles are the reservation roles whose resources the task may
	// take (Marathon's acceptedResourceRoles; "*" = unreserved). Empty
	// means "*" and Role, Marathon's default ("any").
	AcceptedRoles []string
	Constraints   []Constraint
}

// Placed is a task already running or staged; constraints count it.
type Placed struct {
	App, AgentID, Hostname string
	Attributes             map[string]string
}

// Strategy chooses among the offers a request fits.
type Strategy int

const (
	// Spread prefers the host with the fewest tasks of the same app (or,
	// with a GROUP_BY constraint, the least used group first), then the
	// offer with the most left over (highest Score).
	Spread Strategy = iota
	// Binpack prefers the offer with the least left over (highest Score).
	Binpack
)

// Options tune Place.
type Options struct{ Strategy Strategy }

// Placement is one request placed on one offer.
type Placement struct {
	Request                    *Request
	OfferID, AgentID, Hostname string
	// Ports are the request's HostPorts in order, then the ports it asked
	// for by count, lowest first.
	Ports []uint64
	// Resources are ready for TaskInfo.resources: cpus/mem/disk/gpus/ports
	// with the offer's role, reservation and allocation_info. They share
	// pointers with each other: treat them as read-only.
	Resources []mesos.Resource
}

// Result is what Place decided.
type Result struct {
	Placements   []Placement        // grouped by offer in offer order; several per offer allowed
	Unplaced     map[string]Summary // by Request.ID: why each offer refused it
	UnusedOffers []string           // offer ids with no placement (the caller declines them)
}

// Reason names why an offer refused a request, with Marathon's names.
type Reason string

// Reasons, in the order the checks run (Marathon's funnel).
const (
	UnfulfilledRole       Reason = "UnfulfilledRole"
	UnfulfilledConstraint Reason = "UnfulfilledConstraint"
	InsufficientCpus      Reason = "InsufficientCpus"
	InsufficientMemory    Reason = "InsufficientMemory"
	InsufficientDisk      Reason = "InsufficientDisk"
	InsufficientGpus      Reason = "InsufficientGpus"
	InsufficientPorts     Reason = "InsufficientPorts"
)

// ReasonCount is one step of the funnel: Processed offers reached this
// check and Declined of them failed it (Marathon's rejectSummaryLastOffers).
type ReasonCount struct {
	Reason    Reason `json:"reason"`
	Declined  int    `json:"declined"`
	Processed int    `json:"processed"`
}

// Summary says why a request was not placed, like Marathon's
// processedOffersSummary (the JSON names are Marathon's). Each offer is
// counted once, under the first check it failed, judged after everything
// this call placed.
type Summary struct {
	ProcessedOffers int           `json:"processedOffersCount"`
	UnusedOffers    int           `json:"unusedOffersCount"`
	Reasons         []ReasonCount `json:"rejectSummaryLastOffers"` // every reason, in funnel order
}

// Score rates putting a task that needs cpus and mem on an offer that has
// freeCPUs and freeMem left. The result is in [0, 1]; higher is better.
// Spread scores the mean fraction of the free cpus and mem left over
// after the task (1 = the task takes nothing, 0 = it takes everything);
// Binpack scores one minus that, so a perfect fit scores 1. A dimension
// with nothing free is ignored; with none left the score is 0.5.
// Inputs that do not fit (need > free) count as taking everything.
func Score(s Strategy, cpus, mem, freeCPUs, freeMem float64) float64 {
	sum, n := 0.0, 0.0
	if freeCPUs > 0 { // false for NaN too
		sum += leftover(cpus, freeCPUs)
		n++
	}
	if freeMem > 0 {
		sum += leftover(mem, freeMem)
		n++
	}
	f := 0.5
	if n > 0 {
		f = sum / n
	}
	if s == Binpack {
		return 1 - f
	}
	return f
}

// leftover is the fraction of free left after taking need, in [0, 1].
func leftover(need, free float64) float64 {
	l := (free - need) / free
	if !(l >= 0) {
		return 0
	}
	return min(l, 1)
}
