package autoscale

// ring is a bounded decision log. An evaluation that changes nothing for
// the same reason as the one before is folded into it (Repeat), so hours
// of steady state do not push the decisions that matter out of the log.
type ring struct {
	buf  []Decision
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]Decision, n)} }

func (r *ring) add(d Decision) {
	if last, ok := r.last(); ok && !d.Scaled && !last.Scaled && d.Error == "" && last.Error == "" &&
		last.Rule == d.Rule && last.Current == d.Current && last.Desired == d.Desired {
		d.Repeat = last.Repeat + 1
		r.buf[(r.next-1+len(r.buf))%len(r.buf)] = d
		return
	}
	r.buf[r.next] = d
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *ring) last() (Decision, bool) {
	if !r.full && r.next == 0 {
		return Decision{}, false
	}
	return r.buf[(r.next-1+len(r.buf))%len(r.buf)], true
}

// list returns the decisions oldest first, as a copy.
func (r *ring) list() []Decision {
	if !r.full {
		return append([]Decision(nil), r.buf[:r.next]...)
	}
	out := make([]Decision, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}
