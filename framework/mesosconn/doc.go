// Package mesosconn is the connection side of Flotilla's Mesos framework:
// how a Flotilla replica reaches Mesos and how replicas share the work. It
// talks to the scheduler core (package framework) only through the seam
// the core defines: every Mesos event goes, in order, into a channel of
// framework.Input, and the core's side effects come back as calls on
// framework.Actions (the Driver here implements it, and
// framework.BatchAcker for pipelined acknowledgements). The core does no
// I/O and never imports this package; mesos-go's httpcli and httpsched
// are used here only.
//
// Master detection (detect.go). NewDetector takes Mesos's --master syntax:
// a URL (http://127.0.0.1:5050) is used as it is; zk://host:port,…/mesos is
// watched with ChildrenW, and the leader is the json.info_<seq> child with
// the smallest sequence (children come back unordered), reached at its
// MasterInfo address.ip:address.port (hostname if no ip). A change closes
// the channel Leader returned, and the connection drops a stream to a
// master that no longer leads.
//
// Connection (conn.go). Conn.Run keeps one SUBSCRIBE stream open through
// mesos-go's httpcli and httpsched. Before each SUBSCRIBE it asks the
// detector for the leader and builds a client pointed at it: httpsched
// follows a 307 for SUBSCRIBE only and then sends every other call to the
// old master, so Conn follows redirects itself (re-pointing the next
// attempt) and tells httpsched to follow none. It subscribes with the
// framework id from the FrameworkIDStore (or none), a failover timeout
// (default one week) and the capabilities PARTITION_AWARE,
// TASK_KILLING_STATE, MULTI_ROLE and REGION_AWARE (GPU_RESOURCES on
// request), and stores the id SUBSCRIBED confirms. Every event but
// HEARTBEAT goes to the core's Input channel in order; when a stream that
// delivered events ends, Input{Disconnected: err} follows, then Conn
// re-subscribes with jittered exponential backoff on the injected clock.
// The heartbeat watchdog drops a stream after HeartbeatMisses (default 2)
// heartbeat intervals without any event; time the core spends not taking
// an event does not count. ERROR "Framework has been removed" clears the
// stored id (logged at error level: the tasks are gone) and the next
// SUBSCRIBE registers a new framework; "Framework failed over" just
// re-subscribes with the same id.
//
// Driver (driver.go) implements Actions on the current subscription: each
// call carries the framework id and Mesos-Stream-Id, gets CallTimeout when
// its ctx has no deadline, and fails at once with ErrNotSubscribed while
// there is no subscription. It never queues. Acknowledgements, two per
// task, go pipelined on one kept-alive connection (ackpipe.go), and every
// event stream passes a RecordIO frame guard (frames.go) before mesos-go's
// reader sees it.
//
// Election (election.go). Each replica creates an EPHEMERAL|SEQUENCE znode
// <path>/…member_<seq> holding {"address","id"}; the lowest sequence leads
// and every other candidate watches only its predecessor, so a departure
// wakes one replica. The leader stops leading - cancels its work and stops
// calling Actions - at once when its session expires, when it has been
// disconnected longer than FenceAfter (default a quarter of the session
// timeout: go-zookeeper notices a silent server within 2/3 of it, so this
// is before the server can expire the session and elect another), when
// its znode is deleted, or on Abdicate; it then waits for its work to
// stop and contends again with a new session. A standby's LeaderAddress
// reads the leader's znode. Mesos fences
// too: the new leader's SUBSCRIBE with the same framework id makes the
// master end the old stream with "Framework failed over" and refuse its
// calls.
//
// Replica (replica.go) wires them: contend; while leading run a new Conn
// and the core's Run with the same Input channel and the Conn's Driver
// wrapped in a fence (calls fail with ErrFenced, and calls in flight are
// cancelled, once the term ends); on losing leadership stop both before
// anything else. Without ZooKeeper servers a replica leads alone. The
// core's Run is called once per term: apps and tasks it knows survive, and
// the new term's SUBSCRIBED and reconciliation bring it up to date. Replicas
// need distinct Rand seeds for the core, or a new leader can mint the task
// ids its predecessor used.
//
//	det, _ := mesosconn.NewDetector(mesosconn.DetectorConfig{Master: "zk://127.0.0.1:2181/mesos"})
//	r, err := mesosconn.NewReplica(mesosconn.ReplicaConfig{
//		Election: mesosconn.ElectionConfig{Servers: []string{"127.0.0.1:2181"}, Path: "/flotilla/leader", Address: "http://10.0.0.5:8080"},
//		Conn:     mesosconn.ConnConfig{Detector: det, FrameworkIDs: store},
//		Core:     framework.New(framework.Config{}), // Run(ctx, <-chan framework.Input, framework.Actions) per term
//	})
//	go r.Run(ctx)
//	addr, _ := r.LeaderAddress(ctx) // where a standby forwards API calls
//
// Without a Replica (tests, benchmarks) a Conn and the core run side by
// side on one channel:
//
//	conn, _ := mesosconn.NewConn(mesosconn.ConnConfig{Detector: det, FrameworkIDs: ids})
//	in := make(chan framework.Input, 64)
//	go conn.Run(ctx, in)
//	go sched.Run(ctx, in, conn.Driver())
package mesosconn
