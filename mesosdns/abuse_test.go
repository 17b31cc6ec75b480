package mesosdns

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"

	"github.com/flotilla-sched/flotilla/internal/abuse"
	"github.com/flotilla-sched/flotilla/internal/connlimit"
)

// A client that opens 10,000 idle TCP connections, and one that sends a
// byte a second, do not starve a normal client's TCP queries: the idle ones
// past the per-address cap are closed at once instead of waiting in the
// backlog, where the normal client's connection queued behind them (its
// first query took 7.7 s when the cap blocked accepting). Latency is logged,
// not asserted (bench/RESULTS.md, "Slow and abusive clients").
func TestTCPAbusiveClients(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections")
	}
	s := newTestServer(t, testConfig())
	tasks, leader, masters := fixture()
	if err := s.Update(tasks, leader, masters); err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	slow := abuse.Press(ctx, t, addr, 10000, false)
	// Measured once the listener has taken in the flood, as the API's and
	// gateway's tests are.
	cl := s.tcp.Listener.(*connlimit.Listener)
	for deadline := time.Now().Add(time.Minute); cl.Accepted()+cl.Refused() < 10000; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the listener saw %d of 10,000 connections in a minute", cl.Accepted()+cl.Refused())
		}
	}
	var lat abuse.Latencies
	for i := range 200 {
		c := &dns.Client{Net: "tcp", Timeout: 30 * time.Second, Dialer: abuse.Dialer("127.0.0.1")}
		start := time.Now()
		if _, _, err := c.Exchange(new(dns.Msg).SetQuestion("web.flotilla.mesos.", dns.TypeA), addr); err != nil {
			t.Fatalf("normal query %d: %v", i, err)
		}
		lat.Add(time.Since(start))
	}
	t.Logf("normal TCP queries under abuse: p50 %v, p99 %v", lat.Quantile(0.5), lat.Quantile(0.99))
	var m dto.Metric
	if err := s.metrics.tcpRefused.Write(&m); err != nil || m.GetCounter().GetValue() == 0 {
		t.Errorf("no TCP connection refused (%v)", err)
	}
	select {
	case err := <-slow:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("slow client never cut")
	}
}
