package mesosdns

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// ErrDuplicateTask is returned (wrapped) when a snapshot lists a task id
// twice: the snapshot is inconsistent, so the whole build is refused and the
// server keeps serving the previous record set.
var ErrDuplicateTask = errors.New("mesosdns: duplicate task id")

// Port is one port of a task. Protocol is "tcp" (also when empty) or "udp".
type Port struct {
	Number   uint32
	Protocol string
	Name     string
}

// Task is what mesosdns needs to know about one task. It is its own type so
// that the package does not depend on the framework's event types.
type Task struct {
	ID        string   // Mesos task id
	Name      string   // Mesos task name; sanitised per Mesos-DNS rules
	AgentHost string   // agent hostname
	IPs       []net.IP // agent addresses: IPv4 gives A, IPv6 gives AAAA
	Ports     []Port
	// Published is true when the task is running, healthy (where checked)
	// and ready; nothing else is served.
	Published bool
	// Observed is when the framework saw the task become published, read
	// from the same clock as Config.Clock. It feeds the freshness histogram;
	// zero skips the observation.
	Observed time.Time
}

// Master is a Mesos master, for leader., master. and masterN. records.
type Master struct {
	Host string
	IP   net.IP
	Port uint32
}

// Skipped names a task that was left out of a record set, and why. One bad
// task never blocks the others.
type Skipped struct {
	TaskID string
	Reason string
}

// RecordSet is an immutable, read-optimised view of the records to serve.
// Build it with BuildRecords; never modify it after it is published.
type RecordSet struct {
	origin  string // "mesos."
	ttl     uint32
	nsName  string
	mbox    string
	serial  uint32
	soa     *dns.SOA
	soaWire soaWire          // soa packed for the wire path; rest is nil if it could not be
	names   map[string]*node // every owner name, including empty non-terminals
	skipped []Skipped
	// published maps the id of every served task to its Observed time, so an
	// update can tell which tasks became visible with it.
	published map[string]time.Time
	rrCount   int
	// apps and base are what the set was assembled from; the next update
	// reuses the apps that did not change. apps is nil when the set was
	// built in one piece (see monolithic).
	apps      map[string]*appFrag
	base      map[string]*node
	baseCount int
}

// node holds the records of one owner name. A node with no records is an
// empty non-terminal: it exists (NODATA), it is not NXDOMAIN.
type node struct {
	a, aaaa, srv []dns.RR
	// glue are the A/AAAA records of the SRV targets, for the additional
	// section, as Mesos-DNS sends them.
	glue []dns.RR
	// apex records, set only on the zone's origin.
	ns     []dns.RR
	nsGlue []dns.RR
	// wire is the packed form of the answers, built on first use by the
	// UDP wire path (wire.go); the records above never change once the
	// node is published, so neither does it.
	wire atomic.Pointer[nodeWire]
}

// Serial is the SOA serial of the set.
func (rs *RecordSet) Serial() uint32 { return rs.serial }

// Len is the number of resource records in the set.
func (rs *RecordSet) Len() int { return rs.rrCount }

// Skipped lists the published tasks that could not be given records.
func (rs *RecordSet) Skipped() []Skipped { return slices.Clone(rs.skipped) }

// Lookup returns copies of the records of name and qtype (A, AAAA, SRV, NS,
// SOA), for the HTTP API and for callers that want to inspect a set.
func (rs *RecordSet) Lookup(name string, qtype uint16) []dns.RR {
	name = dns.Fqdn(strings.ToLower(name))
	n := rs.names[name]
	if n == nil {
		return nil
	}
	var src []dns.RR
	switch qtype {
	case dns.TypeA:
		src = n.a
	case dns.TypeAAAA:
		src = n.aaaa
	case dns.TypeSRV:
		src = n.srv
	case dns.TypeNS:
		src = n.ns
	case dns.TypeSOA:
		if name == rs.origin {
			src = []dns.RR{rs.soa}
		}
	}
	out := make([]dns.RR, len(src))
	for i, rr := range src {
		out[i] = dns.Copy(rr)
	}
	return out
}

// BuildRecords turns a snapshot into a record set, with Mesos-DNS names
// (mesos-dns's InsertState shape). It is pure: no clock, no I/O. Tasks that
// are not published are absent; published tasks that cannot be named or have
// no address are listed in Skipped. It fails only when the config is unusable
// or the snapshot is inconsistent.
func BuildRecords(cfg Config, tasks []Task, leader Master, masters []Master) (*RecordSet, error) {
	return build(cfg, nil, tasks, leader, masters)
}

// appFrag holds the records of one app (the tasks sharing a sanitised name).
// Its names are disjoint from other apps' names, and its SRV targets are its
// own tasks, so it can be built alone and reused by the next set unchanged.
type appFrag struct {
	fp        uint64
	names     map[string]*node
	published map[string]time.Time
	rrCount   int
}

// build makes a record set from a snapshot. With prev (the set being served,
// built from the same config) only apps whose tasks changed are rebuilt, so
// the cost of an update follows the change, not the cluster: that is what
// keeps records fresh under churn. The result is identical to a build from
// scratch (TestIncrementalEqualsFullBuild).
func build(cfg Config, prev *RecordSet, tasks []Task, leader Master, masters []Master) (*RecordSet, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	seen := make(map[string]struct{}, len(tasks))
	groups := make(map[string][]Task)
	var skipped []Skipped
	for _, t := range tasks {
		if _, dup := seen[t.ID]; dup {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateTask, t.ID)
		}
		seen[t.ID] = struct{}{}
		if !t.Published {
			continue
		}
		name, reason := validate(t)
		if reason != "" {
			skipped = append(skipped, Skipped{TaskID: t.ID, Reason: reason})
			continue
		}
		groups[name] = append(groups[name], t)
	}
	frags := make(map[string]*appFrag, len(groups))
	for name, g := range groups {
		slices.SortFunc(g, func(a, b Task) int { return strings.Compare(a.ID, b.ID) })
		fp := fingerprint(g)
		if prev != nil && prev.apps != nil {
			if f := prev.apps[name]; f != nil && f.fp == fp {
				frags[name] = f
				continue
			}
		}
		b := newBuilder(cfg, len(g))
		for _, t := range g {
			b.task(t)
		}
		b.sortAndGlue()
		frags[name] = &appFrag{fp: fp, names: b.rs.names, published: b.rs.published, rrCount: b.rs.rrCount}
	}
	base := newBuilder(cfg, 0)
	base.masters(leader, masters)
	base.apex()
	base.sortAndGlue()
	base.ents()

	rs := base.rs
	rs.skipped = skipped
	rs.apps = frags
	rs.base = base.rs.names
	rs.baseCount = base.rs.rrCount + 1 // and the SOA
	if !rs.assemble(prev) {
		// Two apps (or an app and a fixed name) own the same name, say
		// "web" and an app literally named like web's instances. Rare:
		// build everything in one builder, which merges shared names, and
		// give up reuse for the next update.
		return monolithic(cfg, tasks, leader, masters), nil
	}
	rs.setSerial(1)
	return rs, nil
}

// assemble fills rs.names from its fragments and base names, starting from
// prev's names when it can. It reports false when two owners claim a name.
func (rs *RecordSet) assemble(prev *RecordSet) bool {
	rs.rrCount = rs.baseCount
	for _, f := range rs.apps {
		rs.rrCount += f.rrCount
	}
	if prev == nil || prev.apps == nil {
		rs.names = make(map[string]*node, len(rs.base)+8*len(rs.apps))
		rs.published = make(map[string]time.Time)
		for _, f := range rs.apps {
			if !rs.add(f) {
				return false
			}
		}
	} else {
		rs.names = maps.Clone(prev.names)
		rs.published = maps.Clone(prev.published)
		for name := range prev.base {
			delete(rs.names, name)
		}
		for label, f := range prev.apps {
			if rs.apps[label] != f {
				for name := range f.names {
					delete(rs.names, name)
				}
				for id := range f.published {
					delete(rs.published, id)
				}
			}
		}
		for label, f := range rs.apps {
			if prev.apps[label] != f && !rs.add(f) {
				return false
			}
		}
	}
	for name, n := range rs.base {
		if _, clash := rs.names[name]; clash {
			return false
		}
		rs.names[name] = n
	}
	return true
}

func (rs *RecordSet) add(f *appFrag) bool {
	for name, n := range f.names {
		if _, clash := rs.names[name]; clash {
			return false
		}
		rs.names[name] = n
	}
	for id, t := range f.published {
		rs.published[id] = t
	}
	return true
}

// monolithic builds every name in one builder, merging names that several
// apps share. Sets built this way are never reused incrementally.
func monolithic(cfg Config, tasks []Task, leader Master, masters []Master) *RecordSet {
	b := newBuilder(cfg, len(tasks))
	for _, t := range tasks {
		if !t.Published {
			continue
		}
		if _, reason := validate(t); reason != "" {
			b.rs.skipped = append(b.rs.skipped, Skipped{TaskID: t.ID, Reason: reason})
			continue
		}
		b.task(t)
	}
	b.masters(leader, masters)
	b.apex()
	b.sortAndGlue()
	b.ents()
	b.rs.rrCount++ // the SOA
	b.rs.setSerial(1)
	return b.rs
}

// fingerprint hashes everything about an app's tasks (sorted by id) that
// shows in its records or its freshness observations.
func fingerprint(g []Task) uint64 {
	h := fnv.New64a()
	var buf [8]byte
	num := func(v uint64) {
		binary.LittleEndian.PutUint64(buf[:], v)
		h.Write(buf[:])
	}
	str := func(s string) {
		num(uint64(len(s)))
		h.Write([]byte(s))
	}
	for _, t := range g {
		str(t.ID)
		num(uint64(t.Observed.UnixNano()))
		num(uint64(len(t.IPs)))
		for _, ip := range t.IPs {
			str(string(ip.To16()))
		}
		num(uint64(len(t.Ports)))
		for _, p := range t.Ports {
			num(uint64(p.Number))
			str(p.Protocol)
			str(p.Name)
		}
	}
	return h.Sum64()
}

type builder struct {
	cfg Config
	fw  string // sanitised framework fragment
	rs  *RecordSet
}

// newBuilder sizes its maps for the snapshot: growing a map of thousands of
// names is a large part of a rebuild.
func newBuilder(cfg Config, tasks int) *builder {
	origin := cfg.Domain + "."
	return &builder{
		cfg: cfg,
		fw:  domainFrag(cfg.Framework),
		rs: &RecordSet{
			origin:    origin,
			ttl:       cfg.TTL,
			nsName:    "ns1." + origin,
			mbox:      "root.ns1." + origin,
			names:     make(map[string]*node, 4*tasks+16),
			published: make(map[string]time.Time, tasks),
		},
	}
}

func (b *builder) node(name string) *node {
	n := b.rs.names[name]
	if n == nil {
		n = &node{}
		b.rs.names[name] = n
	}
	return n
}

func (b *builder) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: b.cfg.TTL}
}

// addIP adds an A or AAAA record unless the same one exists: many tasks of an
// app on one agent give one address, as in Mesos-DNS. The scan is linear
// because record lists per name are short, and it allocates nothing.
func (b *builder) addIP(name string, ip net.IP) {
	n := b.node(name)
	if v4 := ip.To4(); v4 != nil {
		for _, rr := range n.a {
			if rr.(*dns.A).A.Equal(v4) {
				return
			}
		}
		n.a = append(n.a, &dns.A{Hdr: b.hdr(name, dns.TypeA), A: v4})
		return
	}
	for _, rr := range n.aaaa {
		if rr.(*dns.AAAA).AAAA.Equal(ip) {
			return
		}
	}
	n.aaaa = append(n.aaaa, &dns.AAAA{Hdr: b.hdr(name, dns.TypeAAAA), AAAA: ip.To16()})
}

func (b *builder) addSRV(name, target string, port uint32) {
	n := b.node(name)
	for _, rr := range n.srv {
		if srv := rr.(*dns.SRV); srv.Port == uint16(port) && srv.Target == target {
			return
		}
	}
	n.srv = append(n.srv, &dns.SRV{Hdr: b.hdr(name, dns.TypeSRV), Port: uint16(port), Target: target})
}

// validate returns the sanitised name of a published task, or why it cannot
// be given records.
func validate(t Task) (name, reason string) {
	name = label(t.Name)
	if name == "" {
		return "", fmt.Sprintf("task name %q has no valid DNS characters", t.Name)
	}
	if !slices.ContainsFunc(t.IPs, usableIP) {
		return "", "no agent address"
	}
	for _, p := range t.Ports {
		if p.Number == 0 || p.Number > 65535 {
			return "", fmt.Sprintf("port %d out of range", p.Number)
		}
		switch strings.ToLower(p.Protocol) {
		case "", "tcp", "udp":
		default:
			return "", fmt.Sprintf("port %d: protocol %q is neither tcp nor udp", p.Number, p.Protocol)
		}
	}
	return name, ""
}

func usableIP(ip net.IP) bool { return ip.To16() != nil && !ip.IsUnspecified() }

// task adds the records of one task that passed validate.
func (b *builder) task(t Task) {
	name := label(t.Name)
	var ips []net.IP
	for _, ip := range t.IPs {
		if usableIP(ip) {
			ips = append(ips, ip)
		}
	}
	origin := b.rs.origin
	// Mesos-DNS's canonical name is {task}-{hash(id)}-{agent id tail}; we do
	// not know the agent id, and the hash alone already tells instances apart.
	canonical := name + "-" + hashID(t.ID)
	fwTail := "." + b.fw + "."
	short, shortSlave := name+fwTail+origin, name+fwTail+"slave."+origin
	canon, canonSlave := canonical+fwTail+origin, canonical+fwTail+"slave."+origin
	for _, ip := range ips {
		for _, n := range []string{short, shortSlave, canon, canonSlave} {
			b.addIP(n, ip)
		}
	}
	for _, p := range t.Ports {
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		srvTail := "._" + proto + fwTail
		// Mesos-DNS publishes each port under the framework and under
		// .slave, both pointing at the canonical agent name.
		b.addSRV("_"+name+srvTail+origin, canonSlave, p.Number)
		b.addSRV("_"+name+srvTail+"slave."+origin, canonSlave, p.Number)
		if pn := label(p.Name); pn != "" {
			// Mesos-DNS's DiscoveryInfo form for named ports.
			b.addSRV("_"+pn+"._"+name+srvTail+origin, canonSlave, p.Number)
		}
	}
	b.rs.published[t.ID] = t.Observed
}

func (b *builder) masters(leader Master, masters []Master) {
	origin := b.rs.origin
	if leader.IP != nil && !leader.IP.IsUnspecified() {
		b.addIP("leader."+origin, leader.IP)
		b.addIP("master."+origin, leader.IP)
		if leader.Port != 0 && leader.Port <= 65535 {
			b.addSRV("_leader._tcp."+origin, "leader."+origin, leader.Port)
			b.addSRV("_leader._udp."+origin, "leader."+origin, leader.Port)
		}
	}
	idx := 0
	for _, m := range masters {
		if m.IP == nil || m.IP.IsUnspecified() {
			continue
		}
		b.addIP("master."+origin, m.IP)
		b.addIP("master"+strconv.Itoa(idx)+"."+origin, m.IP)
		idx++
	}
}

func (b *builder) apex() {
	origin := b.rs.origin
	// The parents of every task name exist whether or not any task does, so
	// that an app's records never decide whether they are NXDOMAIN.
	fw := "." + b.fw + "."
	for _, ent := range []string{b.fw + ".", "_tcp" + fw, "_udp" + fw} {
		b.node(ent + origin)
		b.node(strings.Replace(ent, b.fw+".", b.fw+".slave.", 1) + origin)
	}
	n := b.node(origin)
	n.ns = []dns.RR{&dns.NS{Hdr: b.hdr(origin, dns.TypeNS), Ns: b.rs.nsName}}
	if b.cfg.NSIP != nil {
		b.addIP(b.rs.nsName, b.cfg.NSIP)
		ns := b.rs.names[b.rs.nsName]
		n.nsGlue = append(append([]dns.RR{}, ns.a...), ns.aaaa...)
	}
}

// sortAndGlue sorts records (answers are shuffled per query, but a stable
// base order keeps builds comparable), counts them and adds SRV glue.
func (b *builder) sortAndGlue() {
	rs := b.rs
	for _, n := range rs.names {
		slices.SortFunc(n.a, func(x, y dns.RR) int { return bytes.Compare(x.(*dns.A).A, y.(*dns.A).A) })
		slices.SortFunc(n.aaaa, func(x, y dns.RR) int { return bytes.Compare(x.(*dns.AAAA).AAAA, y.(*dns.AAAA).AAAA) })
		slices.SortFunc(n.srv, func(x, y dns.RR) int {
			sx, sy := x.(*dns.SRV), y.(*dns.SRV)
			if c := strings.Compare(sx.Target, sy.Target); c != 0 {
				return c
			}
			return int(sx.Port) - int(sy.Port)
		})
		rs.rrCount += len(n.a) + len(n.aaaa) + len(n.srv) + len(n.ns)
	}
	for _, n := range rs.names {
		for i, rr := range n.srv {
			t := rr.(*dns.SRV).Target
			// Sorted by target, so a repeated target follows its first.
			if i > 0 && n.srv[i-1].(*dns.SRV).Target == t {
				continue
			}
			if tn := rs.names[t]; tn != nil {
				n.glue = append(n.glue, tn.a...)
				n.glue = append(n.glue, tn.aaaa...)
			}
		}
	}
}

// ents adds the empty non-terminals above every name: they exist (RFC 8020),
// so their queries get NODATA, not NXDOMAIN.
func (b *builder) ents() {
	rs := b.rs
	names := make([]string, 0, len(rs.names))
	for name := range rs.names {
		names = append(names, name)
	}
	for _, name := range names {
		// Every name ends in the origin (we built them), so the walk stops
		// there; it also stops at a name already present, whose own
		// ancestors are covered by its own walk.
		for p := parent(name); p != "" && len(p) >= len(rs.origin); p = parent(p) {
			if _, ok := rs.names[p]; ok {
				break
			}
			rs.names[p] = &node{}
		}
	}
}

// setSerial stamps the SOA; only called before the set is published.
func (rs *RecordSet) setSerial(serial uint32) {
	rs.serial = serial
	rs.soa = &dns.SOA{
		Hdr:     dns.RR_Header{Name: rs.origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: rs.ttl},
		Ns:      rs.nsName,
		Mbox:    rs.mbox,
		Serial:  serial,
		Refresh: rs.ttl,
		Retry:   600,
		Expire:  86400,
		Minttl:  rs.ttl,
	}
	// Packing a well-formed SOA does not fail; if it ever did, the wire
	// path would decline every query and the dns.Msg path would answer.
	rs.soaWire, _ = packSOA(rs.soa)
}

func parent(name string) string {
	i := strings.IndexByte(name, '.')
	if i < 0 || i == len(name)-1 {
		return ""
	}
	return name[i+1:]
}

// RRs returns copies of every record in the set, SOA first, in a stable
// order: a zone file of the set (the DNS benchmark loads it into CoreDNS).
func (rs *RecordSet) RRs() []dns.RR {
	names := make([]string, 0, len(rs.names))
	for name := range rs.names {
		names = append(names, name)
	}
	slices.Sort(names)
	out := []dns.RR{dns.Copy(rs.soa)}
	for _, name := range names {
		n := rs.names[name]
		for _, set := range [][]dns.RR{n.ns, n.a, n.aaaa, n.srv} {
			for _, rr := range set {
				out = append(out, dns.Copy(rr))
			}
		}
	}
	return out
}
