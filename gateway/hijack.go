package gateway

import (
	"io"
	"net"
	"time"
)

// Answers that fasthttp's response writer cannot give are written on the
// client connection itself, taken over with RequestCtx.Hijack once the
// handler has returned; the request ends when the pipe does.

// sendUntilClose sends a body of unknown length to an HTTP/1.0 client the
// way HTTP/1.0 frames it: by closing the connection at its end.
func (g *Gateway) sendUntilClose(st *reqState) {
	st.hijacked = true
	h := &st.ctx.Response.Header
	h.Del("Transfer-Encoding")
	h.SetConnectionClose()
	st.tmp = h.AppendBytes(st.tmp[:0])
	st.ctx.HijackSetNoResponse(true)
	st.ctx.Hijack(func(client net.Conn) {
		if _, err := client.Write(st.tmp); err == nil {
			st.WriteTo(client)
		}
		st.g.finish(st)
		releaseState(st)
	})
}

// tunnel turns a 101 answer into a byte pipe between client and backend,
// for WebSockets and any other Upgrade, as net/http's ReverseProxy does:
// the handler hijacks the client connection, and the pipe writes the
// backend's 101 head to it, then copies both ways until either side
// closes. The request, counted in flight all along, ends then.
func (g *Gateway) tunnel(st *reqState) {
	st.upgraded, st.hijacked = true, true
	st.watch.stop()
	st.bc.SetDeadline(time.Time{})
	// The head is written by the pipe, so that nothing (a failed write, a
	// Connection: close) can keep fasthttp from calling it.
	st.tmp = st.ctx.Response.Header.AppendBytes(st.tmp[:0])
	st.ctx.HijackSetNoResponse(true)
	st.ctx.Hijack(st.pipe)
}

func (st *reqState) pipe(client net.Conn) {
	bc := st.bc
	done := make(chan struct{}, 2)
	if _, err := client.Write(st.tmp); err == nil {
		go func() {
			io.Copy(bc.Conn, client) // what the client sent after its request head is buffered in client
			done <- struct{}{}
		}()
		go func() {
			io.Copy(client, bc.br) // and what the backend sent after its 101 in bc.br
			done <- struct{}{}
		}()
		<-done
		// Either side closing ends both: fasthttp closes the client
		// connection when the pipe returns, so wake its reader now.
		bc.Close()
		client.SetDeadline(aLongTimeAgo)
		<-done
	}
	st.g.finish(st) // closes bc
	releaseState(st)
}
