package offers

import (
	"math"
	"slices"
	"strconv"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// reason indexes funnel; ok means every check passed.
type reason int8

const (
	rRole reason = iota
	rConstraint
	rCpus
	rMem
	rDisk
	rGpus
	rPorts
	nReasons
	ok reason = -1
)

var funnel = [nReasons]Reason{
	UnfulfilledRole, UnfulfilledConstraint, InsufficientCpus, InsufficientMemory,
	InsufficientDisk, InsufficientGpus, InsufficientPorts,
}

// denseShare: an app's counts for a field are a dense slice when it can
// have a task on at least 1/denseShare of the field's values, else a map.
const denseShare = 256

// missing is the value id of "this task's agent has no such attribute".
const missing int32 = 0

// hostField is the field index of "hostname"; it is always tracked,
// because spreading counts tasks per host.
const hostField = 0

// Place decides which requests go on which offers. Requests of one app
// with the same shape (resources, role, constraints) are placed together,
// in the order their first request appears; within them, in request order.
// Offers are consumed as tasks are placed, so several tasks may share an
// offer, and constraints count placed and this call's tasks of the app.
//
// Each request takes the best candidate by its strategy (see Strategy),
// chosen among a window of feasible offers (64, or 4 per request of the
// group) as Nomad's limit iterator does, so the cost follows the number
// of requests rather than of offers; the window widens when candidates run
// out, so a request is unplaced only once every offer has refused it.
// Spread windows start where the previous group's stopped.
//
// Place reads but never changes its arguments (Placements point at reqs);
// the same input gives the same Result.
func Place(offers []Offer, reqs []Request, placed []Placed, opt Options) Result {
	p := newPlacer(offers, reqs, placed, opt)
	for _, g := range p.groups {
		p.placeGroup(g)
	}
	return p.result()
}

// workRole is what is left of one RoleResources during a call. Scalars
// are in thousandths, as Mesos keeps them, so sums are exact.
type workRole struct {
	role            int32 // interned role; 0 = "*"
	cpus, mem, disk int64
	gpus            int64
	ports           []Range // own copy, sorted, disjoint
	nports          uint64

	// fields echoed into every mesos.Resource taken from this role
	legacyRole *string
	legacyResv *mesos.Resource_ReservationInfo
	reserved   []mesos.Resource_ReservationInfo
	alloc      *mesos.Resource_AllocationInfo
}

type workOffer struct {
	roles []workRole
}

// field is hostname or one attribute that some constraint names; values
// are interned so checks compare ints and index slices.
type field struct {
	name  string
	ids   map[string]int32 // value -> id (>= 1)
	vals  []string         // id -> value; vals[0] is missing
	ofVal []int32          // offer index -> value id
}

func (f *field) intern(v string) int32 {
	if id, found := f.ids[v]; found {
		return id
	}
	id := int32(len(f.vals))
	f.ids[v] = id
	f.vals = append(f.vals, v)
	return id
}

// counter counts one app's tasks per value of one field, with what
// GROUP_BY needs: how many values have tasks and the smallest such count.
type counter struct {
	counts []int32         // by value id, when dense
	sparse map[int32]int32 // by value id, when few tasks meet many values
	groups int32           // values with count > 0 (missing included, as Marathon)
	min    int32           // smallest count > 0; 0 when no task
	hist   []int32         // hist[c] = values with count c, c >= 1
}

// inc counts one more task with value v and reports whether the smallest
// count rose, which may let a GROUP_BY-deferred offer back in.
func (c *counter) inc(v int32) (minUp bool) {
	n := c.get(v)
	if c.counts != nil {
		c.counts[v] = n + 1
	} else {
		if c.sparse == nil {
			c.sparse = map[int32]int32{}
		}
		c.sparse[v] = n + 1
	}
	for int(n)+2 > len(c.hist) {
		c.hist = append(c.hist, 0)
	}
	c.hist[n+1]++
	if n == 0 {
		c.groups++
		c.min = 1 // a new group is the smallest; nothing deferred gains
		return false
	}
	c.hist[n]--
	if n == c.min && c.hist[n] == 0 {
		c.min = n + 1
		return true
	}
	return false
}

func (c *counter) get(v int32) int32 {
	if c.counts != nil {
		return c.counts[v]
	}
	return c.sparse[v]
}

type appState struct {
	total    int32      // tasks counted: placed ones and this call's
	upTo     int        // tasks it can have after this call: placed plus requested
	counters []*counter // by field index; nil when no constraint names the field
	tracked  []int
}

// gcons is a constraint bound to its field, with the offer-only part of
// its verdict cached by value id (0 unknown, 1 pass, 2 fail), because
// LIKE, UNLIKE and IS depend on the value alone.
type gcons struct {
	op     op
	field  int
	valid  bool
	num    int32
	c      Constraint
	static []int8
}

// consKey shares a static verdict cache between groups with the same
// constraint, so a LIKE on hostname runs its regex once per host per call.
type consKey struct{ field, operator, value string }

type need struct {
	cpus, mem, disk, gpus int64
	ports                 uint64
	hostPorts             []uint64
	dupPorts              bool
}

// group is requests of one app with the same shape, placed together.
type group struct {
	app    *appState
	first  *Request
	reqs   []int
	role   int32
	accept []int32 // interned AcceptedRoles; nil = "*" and role
	need   need
	cons   []gcons
	bucket int // first GROUP_BY field, whose values bucket offers; -1 = one bucket

	hostCount *counter // the app's tasks per host
}

type placer struct {
	offers    []Offer
	reqs      []Request
	opt       Options
	work      []workOffer
	roles     map[string]int32
	fields    []*field
	hostVal   []int32 // offer index -> host value id
	byName    map[string]int
	apps      map[string]*appState
	groups    []*group
	cache     map[consKey][]int8
	compiledC map[consKey]Constraint
	types     [2]mesos.Value_Type // SCALAR, RANGES, pointed to by resources

	// scratch reused across groups
	bucketOf []int32
	buckets  []bucket
	hgs      []hostGroup
	hgOf     []int32  // host value -> index in hgs, when hgGen matches gen
	hgGen    []uint32 // host value -> generation hgOf[host] was set in
	hgMore   map[[2]int32]int32
	hostAt   []int32 // host value -> start of its room in hostRoom
	hostRoom []entry // room for every offer's entry, a host's together
	groupOf  []int32 // offer -> its host group in the current group
	gen      uint32  // one per group, so hgOf is not cleared per group
	top      []int32
	deferred []int32
	cursor   int // next offer to scan
	scanned  int // offers scanned for the current group
	window   int

	unplaced map[string]Summary
	placed   []placement // in the order placed
	perOffer []int32     // placements per offer

	resArena    arena[mesos.Resource]
	scalarArena arena[mesos.Value_Scalar]
	rangesArena arena[mesos.Value_Ranges]
	rangeArena  arena[mesos.Value_Range]
	portArena   arena[uint64]
}

func newPlacer(offers []Offer, reqs []Request, placed []Placed, opt Options) *placer {
	p := &placer{
		offers: offers, reqs: reqs, opt: opt,
		roles:     map[string]int32{"*": 0},
		byName:    map[string]int{},
		apps:      map[string]*appState{},
		cache:     map[consKey][]int8{},
		compiledC: map[consKey]Constraint{},
		types:     [2]mesos.Value_Type{mesos.SCALAR, mesos.RANGES},
	}
	p.fieldIndex("hostname")
	p.digestOffers()
	p.groupRequests()
	for _, f := range p.fields {
		f.ofVal = make([]int32, len(offers))
		for i := range offers {
			if f.name == "hostname" {
				f.ofVal[i] = f.intern(offers[i].Hostname)
			} else if v, found := offers[i].Attributes[f.name]; found {
				f.ofVal[i] = f.intern(v)
			}
		}
	}
	p.countPlaced(placed)
	return p
}

func (p *placer) roleID(r string) int32 {
	if r == "" {
		r = "*"
	}
	id, found := p.roles[r]
	if !found {
		id = int32(len(p.roles))
		p.roles[r] = id
	}
	return id
}

func (p *placer) fieldIndex(name string) int {
	if i, found := p.byName[name]; found {
		return i
	}
	p.fields = append(p.fields, &field{name: name, ids: map[string]int32{}, vals: []string{""}})
	p.byName[name] = len(p.fields) - 1
	return len(p.fields) - 1
}

// toMilli saturates: a float beyond int64 converts to an undefined value
// (MinInt64 on amd64), which made cpus: 1e308 "fit" every offer.
func toMilli(x float64) int64 {
	if !(x > 0) {
		return 0
	}
	if m := math.Round(x * 1000); m < math.MaxInt64 {
		return int64(m)
	}
	return math.MaxInt64
}

func (p *placer) digestOffers() {
	p.work = make([]workOffer, len(p.offers))
	p.perOffer = make([]int32, len(p.offers))
	p.placed = make([]placement, 0, len(p.reqs))
	n, nr := 0, 0
	for i := range p.offers {
		n += len(p.offers[i].Resources)
		for j := range p.offers[i].Resources {
			nr += len(p.offers[i].Resources[j].Ports)
		}
	}
	roles := make([]workRole, 0, n) // one allocation for every offer's roles
	ranges := make([]Range, nr)     // and one for all their port ranges
	for i := range p.offers {
		start := len(roles)
		for j := range p.offers[i].Resources {
			rr := &p.offers[i].Resources[j]
			w := workRole{
				role: p.roleID(rr.Role),
				cpus: toMilli(rr.CPUs), mem: toMilli(rr.Mem), disk: toMilli(rr.Disk),
				gpus: int64(max(rr.GPUs, 0)),
			}
			k := copy(ranges, rr.Ports)
			w.ports = normalizeRanges(ranges[:k:k]) // capped: a split reallocates, never spills
			ranges = ranges[k:]
			for _, r := range w.ports {
				w.nports += r.End - r.Begin + 1
			}
			if rr.resv != nil {
				w.legacyRole, w.legacyResv, w.reserved = rr.resv.role, rr.resv.legacy, rr.resv.reserved
			} else if w.role != 0 {
				role := rr.Role
				w.legacyRole = &role
			}
			if rr.AllocationRole != "" {
				a := rr.AllocationRole
				w.alloc = &mesos.Resource_AllocationInfo{Role: &a}
			}
			roles = append(roles, w)
		}
		p.work[i].roles = roles[start:len(roles):len(roles)]
	}
}

// groupRequests puts requests of one app with the same shape together,
// so N instances cost one candidate scan, not N.
func (p *placer) groupRequests() {
	byApp := map[string][]*group{}
	for i := range p.reqs {
		r := &p.reqs[i]
		var g *group
		for _, c := range byApp[r.App] {
			if sameShape(c.first, r) {
				g = c
				break
			}
		}
		if g == nil {
			g = p.newGroup(r)
			byApp[r.App] = append(byApp[r.App], g)
			p.groups = append(p.groups, g)
		}
		g.reqs = append(g.reqs, i)
		g.app.upTo++
	}
}

func sameShape(a, b *Request) bool {
	return a.CPUs == b.CPUs && a.Mem == b.Mem && a.Disk == b.Disk && a.GPUs == b.GPUs &&
		a.Ports == b.Ports && a.Role == b.Role && slices.Equal(a.HostPorts, b.HostPorts) &&
		slices.Equal(a.AcceptedRoles, b.AcceptedRoles) &&
		slices.EqualFunc(a.Constraints, b.Constraints, func(x, y Constraint) bool {
			return x.Field == y.Field && x.Operator == y.Operator && x.Value == y.Value
		})
}

func (p *placer) newGroup(r *Request) *group {
	a := p.apps[r.App]
	if a == nil {
		a = &appState{}
		p.apps[r.App] = a
		p.track(a, hostField)
	}
	g := &group{app: a, first: r, role: p.roleID(r.Role), bucket: -1}
	for _, ar := range r.AcceptedRoles {
		g.accept = append(g.accept, p.roleID(ar))
	}
	g.need = need{
		cpus: toMilli(r.CPUs), mem: toMilli(r.Mem), disk: toMilli(r.Disk),
		gpus: int64(max(r.GPUs, 0)), ports: uint64(max(r.Ports, 0)),
		hostPorts: r.HostPorts,
	}
	for i, hp := range r.HostPorts {
		if slices.Contains(r.HostPorts[:i], hp) {
			g.need.dupPorts = true // cannot bind one port twice: no offer fits
		}
	}
	for _, c := range r.Constraints {
		k := p.compiled(c)
		gc := gcons{c: k, valid: k.ok, op: k.op(), num: int32(k.num), field: p.fieldIndex(k.Field)}
		p.track(a, gc.field)
		if gc.valid && gc.op == opGroupBy && g.bucket < 0 {
			g.bucket = gc.field
		}
		g.cons = append(g.cons, gc)
	}
	return g
}

// compiled returns c checked and with its regex, compiling a hand-built
// constraint once per call; one that does not compile has ok false.
func (p *placer) compiled(c Constraint) Constraint {
	if c.ok {
		return c
	}
	key := consKey{c.Field, c.Operator, c.Value}
	if k, found := p.compiledC[key]; found {
		return k
	}
	k := Constraint{Field: c.Field, Operator: c.Operator, Value: c.Value}
	_ = k.compile() // an error leaves k.ok false: the constraint refuses every offer
	p.compiledC[key] = k
	return k
}

func (p *placer) track(a *appState, f int) {
	for len(a.counters) <= f {
		a.counters = append(a.counters, nil)
	}
	if a.counters[f] == nil {
		a.counters[f] = &counter{}
		a.tracked = append(a.tracked, f)
	}
}

// countPlaced counts the tasks already running, for the requested apps.
func (p *placer) countPlaced(placed []Placed) {
	for i := range placed {
		a := p.apps[placed[i].App]
		if a == nil {
			continue
		}
		a.upTo++
		for _, f := range a.tracked {
			p.valueOf(&placed[i], f)
		}
	}
	for _, a := range p.apps {
		for _, f := range a.tracked {
			// Dense counts cost a slot per value (per host, for hostname):
			// worth it only when the app can have tasks on a fair share.
			if n := len(p.fields[f].vals); a.upTo*denseShare >= n {
				a.counters[f].counts = make([]int32, n)
			}
		}
	}
	p.hostVal = p.fields[hostField].ofVal
	p.layoutHosts()
	for _, g := range p.groups {
		g.hostCount = g.app.counters[hostField]
		for i := range g.cons {
			gc := &g.cons[i]
			key := consKey{gc.c.Field, gc.c.Operator, gc.c.Value}
			s, found := p.cache[key]
			if !found {
				s = make([]int8, len(p.fields[gc.field].vals))
				p.cache[key] = s
			}
			gc.static = s
		}
	}
	for i := range placed {
		a := p.apps[placed[i].App]
		if a == nil {
			continue
		}
		a.total++
		for _, f := range a.tracked {
			a.counters[f].inc(p.valueOf(&placed[i], f))
		}
	}
}

func (p *placer) valueOf(t *Placed, f int) int32 {
	fl := p.fields[f]
	if f == hostField {
		return fl.intern(t.Hostname)
	}
	v, found := t.Attributes[fl.name]
	if !found {
		return missing
	}
	return fl.intern(v)
}

// usable says whether g may take resources of w's role: those its
// AcceptedRoles name, or by default unreserved ones and its own role's.
func (p *placer) usable(g *group, w *workRole) bool {
	if g.accept != nil {
		return slices.Contains(g.accept, w.role)
	}
	return w.role == 0 || w.role == g.role
}

// check runs the feasibility chain for group g on offer o and says which
// check failed first. temp reports a failure that a later placement can
// lift (GROUP_BY waits for the other groups to catch up).
func (p *placer) check(g *group, o int) (r reason, temp bool) {
	if r, temp = p.checkStatic(g, o); r != ok {
		return r, temp
	}
	r, _, _ = p.resourcesOK(g, &p.work[o])
	return r, false
}

// checkStatic is the part of the chain before resources: role, constraints.
func (p *placer) checkStatic(g *group, o int) (reason, bool) {
	if !p.roleOK(g, &p.work[o]) {
		return rRole, false
	}
	for i := range g.cons {
		if pass, t := p.consOK(g, &g.cons[i], o); !pass {
			return rConstraint, t
		}
	}
	return ok, false
}

func (p *placer) roleOK(g *group, w *workOffer) bool {
	for i := range w.roles {
		if p.usable(g, &w.roles[i]) {
			return true
		}
	}
	return false
}

func (p *placer) consOK(g *group, gc *gcons, o int) (pass, temp bool) {
	if !gc.valid {
		return false, false
	}
	v := p.fields[gc.field].ofVal[o]
	if v == missing {
		return gc.op == opUnlike, false // Marathon: only UNLIKE matches a missing attribute
	}
	c := g.app.counters[gc.field]
	switch gc.op {
	case opUnique:
		return c.get(v) == 0, false
	case opMaxPer:
		return c.get(v) < gc.num, false
	case opGroupBy:
		n := c.get(v)
		return n == 0 || (c.groups >= gc.num && n == c.min), true
	case opCluster:
		if gc.c.Value != "" && !p.staticOK(gc, v) {
			return false, false
		}
		return c.get(v) == g.app.total, false // every task of the app has this value
	default: // LIKE, UNLIKE, IS: the value alone decides
		return p.staticOK(gc, v), false
	}
}

func (p *placer) staticOK(gc *gcons, v int32) bool {
	switch gc.static[v] {
	case 1:
		return true
	case 2:
		return false
	}
	val := p.fields[gc.field].vals[v]
	var pass bool
	switch gc.op {
	case opLike:
		pass = gc.c.re.MatchString(val)
	case opUnlike:
		pass = !gc.c.re.MatchString(val)
	case opIs, opCluster:
		pass = sameValue(val, gc.c.Value)
	}
	gc.static[v] = 2
	if pass {
		gc.static[v] = 1
	}
	return pass
}

// sameValue compares as Marathon's IS does: text exactly, scalars as
// numbers to Mesos's precision.
func sameValue(a, b string) bool {
	if a == b {
		return true
	}
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && math.Abs(x-y) < 0.0005
}

// resourcesOK also returns the usable free cpus and mem, which the score needs.
func (p *placer) resourcesOK(g *group, w *workOffer) (reason, int64, int64) {
	var cpus, mem, disk, gpus int64
	var ports uint64
	for i := range w.roles {
		r := &w.roles[i]
		if !p.usable(g, r) {
			continue
		}
		cpus += r.cpus
		mem += r.mem
		disk += r.disk
		gpus += r.gpus
		ports += r.nports
	}
	n := &g.need
	switch {
	case cpus < n.cpus:
		return rCpus, cpus, mem
	case mem < n.mem:
		return rMem, cpus, mem
	case disk < n.disk:
		return rDisk, cpus, mem
	case gpus < n.gpus:
		return rGpus, cpus, mem
	}
	if n.dupPorts || ports < n.ports+uint64(len(n.hostPorts)) {
		return rPorts, cpus, mem
	}
	for _, hp := range n.hostPorts {
		if p.findPort(g, w, hp) < 0 {
			return rPorts, cpus, mem
		}
	}
	return ok, cpus, mem
}

// findPort returns the index of the usable role holding port hp, the
// request's own role first, or -1.
func (p *placer) findPort(g *group, w *workOffer, hp uint64) int {
	at := -1
	for i := range w.roles {
		r := &w.roles[i]
		if p.usable(g, r) && containsPort(r.ports, hp) && (at < 0 || r.role != 0) {
			at = i
		}
	}
	return at
}

func containsPort(rs []Range, hp uint64) bool {
	for _, r := range rs {
		if hp >= r.Begin && hp <= r.End {
			return true
		}
	}
	return false
}
