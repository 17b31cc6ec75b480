// Package discovery keeps the read-optimised views of where tasks run —
// the DNS record set (mesosdns) and the gateway's route table — equal to
// the scheduler's state. It listens to the framework's event bus,
// coalesces bursts, takes one snapshot per burst, turns it into each view's
// own input with pure functions (Tasks, Routes), and hands the result to
// the view, which swaps it atomically. Views never read the store or the
// scheduler's internals; the scheduler never waits for a view.
//
// On a replica that does not lead, the source is the leader's view instead,
// followed over HTTP by a Follower; the Feed switches with SetLeading and
// keeps the last view while neither source has anything newer.
//
//	f := discovery.New(discovery.Config{Scheduler: sched, DNS: dnsServer, Remote: follower})
//	go f.Run(ctx)
package discovery
