package mesosdns

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"

	"github.com/miekg/dns"
)

// The wire path answers the common UDP queries (A, AAAA and SRV of a name in
// the zone, and NXDOMAIN) without unpacking the query into a dns.Msg or
// packing a reply with miekg/dns: the records of each name are kept packed,
// each one with its owner written as a pointer to the question (offset 12),
// so a reply is the query's header and question copied in, then the
// pre-built records in shuffled order. Under dnsperf the dns.Msg round trip
// was a quarter of the server's CPU and most of its allocations.
//
// The packed forms hang off the immutable nodes and RecordSet, so a record
// change (a new set, new nodes) is a new cache: nothing is invalidated.
// Anything unusual (another opcode or class, EDNS options other than cookies and padding, another EDNS version, a name
// with characters other than letters, digits, '-' and '_', a reply that
// would not fit the client's size, a name outside the zone, a set not yet
// ready) goes to the dns.Msg path, which stays the reference:
// TestWirePathMatchesSlowPath checks that both give the same answers.

// Header flag bits (RFC 1035 4.1.1).
const (
	flagQR = 1 << 15
	flagAA = 1 << 10
	flagRD = 1 << 8
	flagCD = 1 << 4
)

// ownerIsQuestion is a compression pointer to offset 12, where the question
// name starts: the owner of every answer record is the question name.
var ownerIsQuestion = [2]byte{0xC0, 12}

// srvTargetOff is where an SRV record's target starts within its packed
// form: owner pointer (2), type, class, TTL, rdlength (10), priority,
// weight, port (6). Glue records point their owner there.
const srvTargetOff = 18

// rrsetWire is one record set of a name, packed: its records are ranges of
// the node's one buffer (nodeWire.buf), so an answer reads one run of
// memory rather than a slice per record (under dnsperf, loading scattered
// records was most of the wire path's time: cache misses).
type rrsetWire struct {
	ans  []uint32 // answer i is buf[ans[i]:ans[i+1]], a whole record, owner = ownerIsQuestion
	glue []glueWire
	size int // bytes of ans and glue in a reply
}

// count is the number of answer records.
func (r *rrsetWire) count() int { return max(0, len(r.ans)-1) }

// glueWire is an additional-section address of an SRV target.
type glueWire struct {
	target   int    // index in ans of the SRV whose target is this owner; -1: owner written out in buf[from:to]
	from, to uint32 // the record after its owner name (all of it when target < 0)
}

// nodeWire is the packed form of a node's A, AAAA and SRV answers.
type nodeWire struct {
	buf          []byte
	a, aaaa, srv rrsetWire
}

// wireForm returns n's packed answers, building them on first use. Nodes never
// change once published, so two workers building at once build the same.
func (n *node) wireForm() (*nodeWire, error) {
	if w := n.wire.Load(); w != nil {
		return w, nil
	}
	w := &nodeWire{}
	// One array of offsets and one of glue for the three sets, sized so
	// that the sets' slices of them never move.
	offs := make([]uint32, 0, len(n.a)+len(n.aaaa)+len(n.srv)+3)
	glue := make([]glueWire, 0, len(n.glue))
	var err error
	if w.a, offs, glue, err = w.pack(n.a, nil, offs, glue); err != nil {
		return nil, err
	}
	if w.aaaa, offs, glue, err = w.pack(n.aaaa, nil, offs, glue); err != nil {
		return nil, err
	}
	if w.srv, _, _, err = w.pack(n.srv, n.glue, offs, glue); err != nil {
		return nil, err
	}
	n.wire.Store(w)
	return w, nil
}

// pack appends a set's records to w.buf, its offsets to offs and its glue to
// glue, and returns the set with the rest of offs and glue.
func (w *nodeWire) pack(ans, glueRRs []dns.RR, offs []uint32, glue []glueWire) (rrsetWire, []uint32, []glueWire, error) {
	var set rrsetWire
	if len(ans) == 0 {
		return set, offs, glue, nil
	}
	start, gstart := len(offs), len(glue)
	offs = append(offs, uint32(len(w.buf)))
	targets := make(map[string]int, len(ans))
	for i, rr := range ans {
		b, ownerLen, err := packOne(rr)
		if err != nil {
			return set, offs, glue, err
		}
		w.buf = append(append(w.buf, ownerIsQuestion[:]...), b[ownerLen:]...)
		offs = append(offs, uint32(len(w.buf)))
		set.size += 2 + len(b) - ownerLen
		if srv, ok := rr.(*dns.SRV); ok {
			if _, dup := targets[srv.Target]; !dup {
				targets[srv.Target] = i
			}
		}
	}
	for _, rr := range glueRRs {
		b, ownerLen, err := packOne(rr)
		if err != nil {
			return set, offs, glue, err
		}
		g := glueWire{target: -1}
		if i, ok := targets[rr.Header().Name]; ok {
			g.target = i
			b = b[ownerLen:]
			set.size += 2
		}
		g.from = uint32(len(w.buf))
		w.buf = append(w.buf, b...)
		g.to = uint32(len(w.buf))
		glue = append(glue, g)
		set.size += len(b)
	}
	set.ans, set.glue = offs[start:len(offs):len(offs)], glue[gstart:len(glue):len(glue)]
	return set, offs, glue, nil
}

// packOne packs rr uncompressed and returns it with the length of its owner
// name. It packs a copy: dns.PackRR writes the header's Rdlength, and the
// records are shared with readers.
func packOne(rr dns.RR) ([]byte, int, error) {
	rr = dns.Copy(rr)
	buf := make([]byte, dns.Len(rr)+64)
	n, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		return nil, 0, err
	}
	ownerLen, err := dns.PackDomainName(rr.Header().Name, buf[n:], 0, nil, false)
	if err != nil {
		return nil, 0, err
	}
	return buf[:n:n], ownerLen, nil
}

// soaWire is a set's SOA for the authority section of NXDOMAIN and NODATA,
// packed with its owner left out: the owner is the origin, written as a
// pointer to the origin's place at the end of the question name. Its names
// are compressed as Knot and BIND do (ns1.mesos. as "ns1" and a pointer to
// the origin, root.ns1.mesos. as "root" and a pointer to ns1.mesos.); the
// pointers depend on where the question's origin and the SOA land, so
// patches says where in rest to write them.
type soaWire struct {
	rest      []byte
	originLen int // wire length of the origin name
	patches   []soaPatch
}

// soaPatch is a pointer to write into soaWire.rest at at: to the origin in
// the question, or to the SOA's mname (which starts right after the fixed
// fields).
type soaPatch struct {
	at       int
	toOrigin bool
}

// soaMnameOff is where the mname starts in an SOA record whose owner is a
// pointer: owner (2), type, class, TTL, rdlength (10).
const soaMnameOff = 12

func packSOA(soa *dns.SOA) (soaWire, error) {
	origin := strings.ToLower(soa.Hdr.Name)
	originLen, err := dns.PackDomainName(origin, make([]byte, 256), 0, nil, false)
	if err != nil {
		return soaWire{}, err
	}
	w := soaWire{originLen: originLen, rest: make([]byte, 10, 64)}
	// name appends name, compressed against the origin or the mname.
	name := func(n, mname string) error {
		n = strings.ToLower(n)
		for _, suffix := range []struct {
			name     string
			toOrigin bool
		}{{mname, false}, {origin, true}} {
			if suffix.name == "" || !strings.HasSuffix(n, suffix.name) ||
				(len(n) > len(suffix.name) && n[len(n)-len(suffix.name)-1] != '.') {
				continue
			}
			if prefix := n[:len(n)-len(suffix.name)]; prefix != "" {
				buf := make([]byte, 256)
				l, err := dns.PackDomainName(prefix, buf, 0, nil, false)
				if err != nil {
					return err
				}
				w.rest = append(w.rest, buf[:l-1]...) // without the root label
			}
			w.patches = append(w.patches, soaPatch{at: len(w.rest), toOrigin: suffix.toOrigin})
			w.rest = append(w.rest, 0xC0, 0)
			return nil
		}
		buf := make([]byte, 256)
		l, err := dns.PackDomainName(n, buf, 0, nil, false)
		if err != nil {
			return err
		}
		w.rest = append(w.rest, buf[:l]...)
		return nil
	}
	if err := name(soa.Ns, ""); err != nil {
		return soaWire{}, err
	}
	if err := name(soa.Mbox, strings.ToLower(soa.Ns)); err != nil {
		return soaWire{}, err
	}
	for _, v := range []uint32{soa.Serial, soa.Refresh, soa.Retry, soa.Expire, soa.Minttl} {
		w.rest = binary.BigEndian.AppendUint32(w.rest, v)
	}
	binary.BigEndian.PutUint16(w.rest[0:], dns.TypeSOA)
	binary.BigEndian.PutUint16(w.rest[2:], soa.Hdr.Class)
	binary.BigEndian.PutUint32(w.rest[4:], soa.Hdr.Ttl)
	binary.BigEndian.PutUint16(w.rest[8:], uint16(len(w.rest)-10))
	return w, nil
}

// wireQuery is what the wire path needs of a query.
type wireQuery struct {
	id, flags uint16
	question  []byte // name, type and class as the client sent them
	nameLen   int    // wire length of the name in question
	qtype     uint16
	edns      bool
	do        bool
	udpSize   int
}

// parseWireQuery accepts a plain query: QR clear, opcode QUERY, one question
// of class IN whose name is letters, digits, '-' and '_' only (a name
// needing escapes in text form goes the slow way), no answer or authority
// records, and at most an EDNS0 version 0 OPT whose options are only
// cookies and padding (ignorableOptions). It writes the lower-cased text
// form of the name into text and returns its length.
func parseWireQuery(pkt []byte, text *[256]byte) (q wireQuery, textLen int, ok bool) {
	if len(pkt) < 12+1+4 {
		return q, 0, false
	}
	q.id = binary.BigEndian.Uint16(pkt[0:])
	q.flags = binary.BigEndian.Uint16(pkt[2:])
	if q.flags&flagQR != 0 || (q.flags>>11)&0xF != dns.OpcodeQuery {
		return q, 0, false
	}
	qd, an, ns, ar := binary.BigEndian.Uint16(pkt[4:]), binary.BigEndian.Uint16(pkt[6:]), binary.BigEndian.Uint16(pkt[8:]), binary.BigEndian.Uint16(pkt[10:])
	if qd != 1 || an != 0 || ns != 0 || ar > 1 {
		return q, 0, false
	}
	off := 12
	for {
		if off >= len(pkt) {
			return q, 0, false
		}
		l := int(pkt[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(pkt) || textLen+l+1 > 254 {
			return q, 0, false
		}
		for _, c := range pkt[off : off+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			default:
				return q, 0, false
			}
			text[textLen] = c
			textLen++
		}
		text[textLen] = '.'
		textLen++
		off += l
	}
	if textLen == 0 || off+4 > len(pkt) {
		return q, 0, false // the root name is never ours
	}
	q.nameLen = off - 12
	q.qtype = binary.BigEndian.Uint16(pkt[off:])
	if binary.BigEndian.Uint16(pkt[off+2:]) != dns.ClassINET {
		return q, 0, false
	}
	off += 4
	q.question = pkt[12:off]
	if ar == 1 {
		// OPT: root name, type 41, class = UDP size, TTL = extended rcode,
		// version, flags; rdlength and options.
		if off+11 > len(pkt) || pkt[off] != 0 || binary.BigEndian.Uint16(pkt[off+1:]) != dns.TypeOPT ||
			pkt[off+6] != 0 || off+11+int(binary.BigEndian.Uint16(pkt[off+9:])) != len(pkt) ||
			!ignorableOptions(pkt[off+11:]) {
			return q, 0, false
		}
		q.edns = true
		q.udpSize = int(binary.BigEndian.Uint16(pkt[off+3:]))
		q.do = pkt[off+7]&0x80 != 0
		off = len(pkt)
	}
	if off != len(pkt) {
		return q, 0, false
	}
	return q, textLen, true
}

// ignorableOptions says whether EDNS options are only ones the server
// ignores and the dns.Msg path reads without error: a cookie (RFC 7873; dig
// sends one by default; the server does not answer with one) and padding
// (RFC 7830). Anything else, or a malformed list, goes the slow way.
func ignorableOptions(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 4 {
			return false
		}
		code, l := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if 4+l > len(b) {
			return false
		}
		switch code {
		case dns.EDNS0COOKIE, dns.EDNS0PADDING:
		default:
			return false
		}
		b = b[4+l:]
	}
	return true
}

// wireReply answers pkt into out from the packed records, or reports false
// when the query must take the dns.Msg path. It shuffles with the same
// generator calls as answer, so both paths give the same order for the
// same seed.
func (s *Server) wireReply(pkt, out []byte) ([]byte, bool) {
	return s.wireAnswer(pkt, out, nil)
}

// wireWorker is a UDP worker's own shuffling source and answer counts: the
// server's shared generator (behind a mutex) and Prometheus counters (one
// atomic add per query) put a cache line in both cores' way on every query.
// The counts go to the metrics once per batch (addTo).
type wireWorker struct {
	rng               *rand.Rand
	noError, nxDomain uint64
}

func newWireWorker(seed uint64, worker int) *wireWorker {
	return &wireWorker{rng: rand.New(rand.NewPCG(seed^uint64(worker+1)*0x9e3779b97f4a7c15, seed))}
}

func (w *wireWorker) addTo(m *metrics) {
	if w.noError > 0 {
		m.byRcode[dns.RcodeSuccess].Add(float64(w.noError))
		w.noError = 0
	}
	if w.nxDomain > 0 {
		m.byRcode[dns.RcodeNameError].Add(float64(w.nxDomain))
		w.nxDomain = 0
	}
}

// wireAnswer is wireReply with w's generator and counts, or the server's
// when w is nil (the order the dns.Msg path gives for the same seed).
func (s *Server) wireAnswer(pkt, out []byte, w *wireWorker) ([]byte, bool) {
	if !s.ready.Load() {
		return nil, false
	}
	var text [256]byte
	q, textLen, ok := parseWireQuery(pkt, &text)
	if !ok {
		return nil, false
	}
	rs := s.rs.Load()
	name := text[:textLen]
	if o := rs.origin; len(name) < len(o) || string(name[len(name)-len(o):]) != o ||
		(len(name) > len(o) && name[len(name)-len(o)-1] != '.') {
		return nil, false // forwarded or refused
	}
	rcode := dns.RcodeSuccess
	var set *rrsetWire
	var buf []byte // the node's packed records
	if n := rs.names[string(name)]; n == nil {
		rcode = dns.RcodeNameError
	} else {
		switch q.qtype {
		case dns.TypeA, dns.TypeAAAA, dns.TypeSRV:
		default:
			return nil, false
		}
		nw, err := n.wireForm()
		if err != nil {
			s.log.WithError(err).Error("pack records")
			return nil, false
		}
		switch q.qtype {
		case dns.TypeA:
			set = &nw.a
		case dns.TypeAAAA:
			set = &nw.aaaa
		default:
			set = &nw.srv
		}
		if set.count() == 0 {
			set = nil // NODATA
		} else {
			buf = nw.buf
		}
	}
	limit := dns.MinMsgSize
	size := 12 + len(q.question)
	if q.edns {
		limit = min(max(q.udpSize, dns.MinMsgSize), maxUDPReply)
		size += 11
	}
	if set != nil {
		size += set.size
	} else {
		size += 2 + len(rs.soaWire.rest)
	}
	if size > limit || size > len(out) || rs.soaWire.rest == nil {
		return nil, false
	}

	b := out[:12]
	binary.BigEndian.PutUint16(b[0:], q.id)
	binary.BigEndian.PutUint16(b[2:], flagQR|flagAA|q.flags&(flagRD|flagCD)|uint16(rcode))
	binary.BigEndian.PutUint16(b[4:], 1)
	var an, ns, ar int
	b = append(b, q.question...)
	if set == nil {
		ns = 1
		soa := len(b)
		originAt := 0xC000 | uint16(12+q.nameLen-rs.soaWire.originLen)
		b = binary.BigEndian.AppendUint16(b, originAt)
		b = append(b, rs.soaWire.rest...)
		for _, p := range rs.soaWire.patches {
			ptr := originAt
			if !p.toOrigin {
				ptr = 0xC000 | uint16(soa+soaMnameOff)
			}
			binary.BigEndian.PutUint16(b[soa+2+p.at:], ptr)
		}
	} else {
		an, ar = set.count(), len(set.glue)
		b = s.appendSet(b, buf, set, w)
	}
	if q.edns {
		ar++
		var flags byte
		if q.do {
			flags = 0x80
		}
		b = append(b, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(advertisedUDPSize>>8), byte(advertisedUDPSize&0xFF),
			0, 0, flags, 0, 0, 0)
	}
	binary.BigEndian.PutUint16(b[6:], uint16(an))
	binary.BigEndian.PutUint16(b[8:], uint16(ns))
	binary.BigEndian.PutUint16(b[10:], uint16(ar))
	switch {
	case w == nil:
		s.metrics.count(rcode)
	case rcode == dns.RcodeSuccess:
		w.noError++
	default:
		w.nxDomain++
	}
	return b, true
}

// appendSet appends set's answers, shuffled (with w's generator, or the
// server's when w is nil), and its glue, each glue owner a pointer to its
// SRV's target.
func (s *Server) appendSet(b, buf []byte, set *rrsetWire, w *wireWorker) []byte {
	an := set.count()
	var permBuf, posBuf [16]int
	perm, pos := permBuf[:0], posBuf[:0]
	if an > len(permBuf) {
		perm, pos = make([]int, 0, an), make([]int, 0, an)
	}
	for i := range an {
		perm = append(perm, i)
	}
	pos = pos[:an]
	if an > 1 {
		swap := func(i, j int) { perm[i], perm[j] = perm[j], perm[i] }
		if w != nil {
			w.rng.Shuffle(an, swap)
		} else {
			s.rngMu.Lock()
			s.rng.Shuffle(an, swap)
			s.rngMu.Unlock()
		}
	}
	for _, i := range perm {
		pos[i] = len(b)
		b = append(b, buf[set.ans[i]:set.ans[i+1]]...)
	}
	for _, g := range set.glue {
		if g.target >= 0 {
			ptr := 0xC000 | uint16(pos[g.target]+srvTargetOff)
			b = append(b, byte(ptr>>8), byte(ptr))
		}
		b = append(b, buf[g.from:g.to]...)
	}
	return b
}
