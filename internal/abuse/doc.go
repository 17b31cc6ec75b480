// Package abuse is the slow and abusive client of the listener tests and
// benchmarks (api, gateway): thousands of idle connections from one
// loopback address, a header sent a byte at a time, and the normal client's
// latencies beside them. It lives in a normal file so every package's tests
// and the bench use the same one.
//
//	if err := abuse.RaiseNoFile(12000); err != nil { t.Skip(err) }
//	idle, err := abuse.OpenIdle(ctx, "127.0.0.2", addr, 10000)
//	defer idle.Close()
//	go abuse.SlowHeader(ctx, "127.0.0.3", addr, []byte("GET / HTTP/1.1\r\n"), time.Second)
//	var lat abuse.Latencies // lat.Add(d) per normal request; lat.Quantile(0.99)
//
// Every address is loopback: all of 127/8 reaches this machine, so distinct
// source addresses stand for distinct clients without leaving it.
package abuse
