// Package framework is Flotilla's Mesos framework: the connection side
// (subscription, master detection, heartbeat watchdog, leader election;
// conn*.go, detect*.go, driver*.go, election*.go, replica*.go) and the
// scheduler core (everything else), which keeps what runs on Mesos equal
// to the apps it was given.
//
// The core is one goroutine, Scheduler.Run, fed by the connection with
// every Mesos event in order. Like etcd's raft it does no I/O of its own
// and reads time only from an injected clock: each turn of the loop takes
// one input, decides under a lock with pure functions, then performs the
// decided side effects through Actions (the mesos-go Driver in
// production, Recorder in tests):
//
//	s := framework.New(framework.Config{Clock: clk, Rand: rand.New(rand.NewSource(1)), Log: log})
//	s.PutApp(app)                       // desired state, from any goroutine
//	go s.Run(ctx, inputs, driver)       // while this replica leads
//
//	for { // inside Run
//		select {
//		case in := <-inputs:  // SUBSCRIBED, OFFERS, UPDATE, … or Disconnected
//			handleInput      // ack uuid updates, adopt or kill unknown tasks,
//			                 // place waiting instances on offers (offers.Place)
//		case <-timer:        // backoff ends, unreachable deadlines, retries
//		case <-poke:         // PutApp, Scale, KillTasks, RemoveApp
//		}
//		step(now)            // decideApp per changed app: kills and launch needs;
//		                     // reconciliation retries; SUPPRESS/REVIVE
//		perform(plan)        // ACKNOWLEDGE, KILL, ACCEPT, DECLINE, RECONCILE …
//	}
//
// Acknowledgements alone go out on a few worker goroutines, since one
// HTTP round trip per status update would otherwise bound the loop.
//
// Readers never touch that state: Snapshot returns an immutable copy and
// Subscribe an event stream that never blocks the loop.
//
// Task ids follow Marathon's scheme (app.instance-<uuid>._app.1, see
// NewTaskID), so the app of any task can be read from its id: after a
// failover the new leader learns of running tasks through implicit
// reconciliation and adopts them rather than launching duplicates
// (launches are held for Config.ReconcileSettle after SUBSCRIBED).
package framework
