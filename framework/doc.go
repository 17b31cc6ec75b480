// Package framework is the scheduler core of Flotilla's Mesos framework:
// it keeps what runs on Mesos equal to the apps it was given. The
// connection side (subscription, master detection, heartbeat watchdog,
// leader election, the mesos-go Driver) is package framework/mesosconn,
// which feeds the core through the seam defined here (Input, Actions,
// BatchAcker) and is never imported by it.
//
// The core is one goroutine, Scheduler.Run, fed by the connection with
// every Mesos event in order. Like etcd's raft it does no I/O of its own
// and reads time only from an injected clock: each turn of the loop takes
// one input, decides under a lock with pure functions, then performs the
// decided side effects through Actions (mesosconn's Driver in
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
// The core's files follow the loop: core.go holds its state and the plan
// a turn produces; desired.go the API side (PutApp, Scale, KillTasks);
// inputs.go what the connection hands in and reconciliation; updates.go
// status updates and a task's life (adoption, health, backoff,
// unreachable); step.go the time-driven step and the next wake-up;
// launch.go offers and launches; decide.go the pure per-app decisions.
//
// Acknowledgements alone go out on a few worker goroutines, since one
// HTTP round trip per status update would otherwise bound the loop.
//
// Readers never touch that state: Snapshot returns an immutable copy and
// Subscribe an event stream that never blocks the loop. Snapshots are
// built incrementally (snapshot.go): each app's tasks are an immutable
// part shared with the previous snapshot until one of them changes, so a
// new generation costs the apps a step touched, not every task.
// SnapshotByApp skips the flat list of every task (read each app's with
// TasksOf or a Cursor); SameTasks tells a reader an app's tasks did not
// change between two snapshots.
//
// A new app version rolls (decideApp, rollDecision): old tasks are killed
// and new ones launched within upgradeStrategy's healthy minimum and
// total maximum, as new tasks become healthy. Each app's progress is an
// AppStatus (Snapshot.Status, EventDeployment) whose Done tells the API's
// deployment manager that the app reached its desired state.
//
// With Config.Tasks set, a record of every task (agent, version, state) is
// written off the loop, coalesced per task; Restore reads them back when
// a replica is about to lead:
//
//	for _, a := range apps { s.PutApp(a) }
//	if _, err := s.Restore(ctx); err != nil { … }
//	go s.Run(ctx, inputs, driver)
//
// Task ids follow Marathon's scheme (app.instance-<uuid>._app.1, see
// NewTaskID), so the app of any task can be read from its id: after a
// failover the new leader learns of running tasks through implicit
// reconciliation and adopts them rather than launching duplicates
// (launches are held for Config.ReconcileSettle after SUBSCRIBED).
//
// An app with persistent volumes has resident instances (resident.go,
// resident_core.go): the first launch reserves and creates the volumes on
// the agent it lands on, every later task of the instance is launched on
// that reservation only; scale down keeps it, a wipe or the app's deletion
// destroys and unreserves it.
//
// A pod (appspec.Pod) is an app whose App.Pod is set; each of its
// instances is one Task here and one LAUNCH_GROUP at Mesos (pods.go,
// pods_launch.go): its containers' updates are folded into the instance,
// and kills and reconciliation speak of the containers' task ids.
package framework
