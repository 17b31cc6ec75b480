// Package connlimit caps the connections a listener hands to its server,
// in total and per client address, and turns the excess away at once with
// a short answer in the server's protocol; and when accepting fails for
// want of file descriptors (EMFILE, ENFILE) it backs off instead of
// spinning or giving up.
//
// It exists because none of the servers it fronts does all of that:
// net/http has no connection cap; golang.org/x/net/netutil.LimitListener
// caps the total by blocking Accept, so the excess waits in the kernel's
// backlog where a good client queues behind a flood (for up to the header
// timeout) and nobody counts it, and it has no per-address cap; fasthttp
// has both caps, but counts only one kind of refusal and stops serving for
// good on EMFILE (it treats it as permanent); miekg/dns retries EMFILE in
// a busy loop.
//
//	ln = connlimit.New(ln, connlimit.Config{Max: 1024, MaxPerIP: 256,
//		Refusal: func(r connlimit.Reason) []byte { return []byte("HTTP/1.1 503 …") },
//		OnRefuse: func(r connlimit.Reason) { refused.WithLabelValues(string(r)).Inc() }})
//	srv.Serve(ln)
package connlimit
