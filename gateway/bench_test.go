package gateway

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkProxy measures one request through the gateway on loopback,
// with a fasthttp client and backend so that allocs/op is the gateway's
// own (both allocate nothing per request): the common path should report
// 0. The comparison with nginx is bench/gateway/run.sh.
func BenchmarkProxy(b *testing.B) {
	for _, bc := range []struct {
		name string
		body int
	}{
		// Largest first: fasthttp's buffer pools, which client, gateway and
		// backend share here, size themselves by what they have seen, and
		// a smaller body after a larger one fits the buffers already made.
		{"GET-256KiB-streamed", 256 << 10},
		{"GET-32KiB", 32 << 10},
		{"GET-6B", 6},
	} {
		b.Run(bc.name, func(b *testing.B) {
			payload := make([]byte, bc.body)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			backend := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
				ctx.SetContentType("text/plain")
				ctx.SetBody(payload)
			}}
			go backend.Serve(ln)
			defer backend.Shutdown()

			g := newTestGateway(b, Config{})
			g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{backendOf(b, "web.1", ln.Addr().String())}}})
			if err := g.Start(); err != nil {
				b.Fatal(err)
			}

			c := &fasthttp.HostClient{Addr: g.Addr(Internal).String()}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI("http://" + webDNS + "/")
			req.UseHostHeader = true
			req.Header.SetHost(webDNS)
			do := func() {
				if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 || len(resp.Body()) != bc.body {
					b.Fatalf("%v %d %d", err, resp.StatusCode(), len(resp.Body()))
				}
			}
			for range 100 {
				do() // warm the pools
			}
			b.ReportAllocs()
			b.SetBytes(int64(bc.body))
			b.ResetTimer()
			for b.Loop() {
				do()
			}
		})
	}
}
