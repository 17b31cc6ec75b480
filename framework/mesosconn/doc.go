// Package mesosconn is the connection side of Flotilla's Mesos framework:
// master detection (detect.go), the SUBSCRIBE stream with its heartbeat
// watchdog and re-subscription (conn.go, frames.go), the Driver that
// performs the scheduler core's Actions on the current subscription
// (driver.go, with acknowledgements pipelined by ackpipe.go), leader
// election in ZooKeeper (election.go), and the Replica that ties them to
// the core while this replica leads (replica.go, whose opening comment
// walks through all of them).
//
// It talks to the core (package framework) only through the seam the core
// defines: every Mesos event goes into a channel of framework.Input in
// order, and the core's side effects come back as calls on
// framework.Actions (Driver implements it, and framework.BatchAcker for
// pipelined acknowledgements). The core does no I/O and never imports
// this package; mesos-go's httpcli and httpsched are used here only.
//
//	det, _ := mesosconn.NewDetector(mesosconn.DetectorConfig{Master: "zk://zk1:2181/mesos"})
//	r, _ := mesosconn.NewReplica(mesosconn.ReplicaConfig{
//		Election: mesosconn.ElectionConfig{Servers: zks, Path: "/flotilla/leader", Address: advertise},
//		Conn:     mesosconn.ConnConfig{Detector: det, FrameworkIDs: store, Name: "flotilla"},
//		Core:     core, // Run(ctx, <-chan framework.Input, framework.Actions) per term
//	})
//	err := r.Run(ctx) // contends; while leading, runs a Conn and the core
//
// Without a Replica (tests, benchmarks) a Conn and the core run side by
// side on one channel:
//
//	conn, _ := mesosconn.NewConn(mesosconn.ConnConfig{Detector: det, FrameworkIDs: ids})
//	in := make(chan framework.Input, 64)
//	go conn.Run(ctx, in)
//	go sched.Run(ctx, in, conn.Driver())
package mesosconn
