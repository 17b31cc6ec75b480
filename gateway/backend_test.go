package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Keep-alive connections to backends are reused, and one the backend has
// closed meanwhile costs the client nothing.
func TestBackendConnectionsReusedAndStaleOnesReplaced(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{backendOf(t, "web.1", srv.Listener.Addr().String())}}})
	front := g.front(t, Internal)

	for _, method := range []string{"GET", "HEAD", "GET", "GET"} {
		if status, _ := do(t, front, method, webDNS, "/", nil); status != 200 {
			t.Fatalf("%s: %d", method, status)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("backend saw %d connections for 4 sequential requests; want 1 kept alive", n)
	}
	srv.CloseClientConnections() // as a backend's idle timeout would
	for i := 0; i < 3; i++ {
		if status, body := do(t, front, "GET", webDNS, "/", nil); status != 200 || body != "ok" {
			t.Fatalf("GET after the backend closed its idle connections: %d %q", status, body)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("backend saw %d connections; want 2", n)
	}
	// A request that may not be sent twice is not sent on a connection
	// the backend has closed either: the gateway checks before using one.
	srv.CloseClientConnections()
	if status, body := do(t, front, "POST", webDNS, "/", strings.NewReader("once")); status != 200 || body != "ok" {
		t.Fatalf("POST after the backend closed its idle connections: %d %q", status, body)
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("backend saw %d connections; want 3", n)
	}
}

// Responses pass through unchanged, whether their body is copied whole
// (short) or streamed (long, chunked), for methods that may be resent on a
// fresh connection (GET, HEAD, OPTIONS) and for one that may not (DELETE).
func TestResponsesPassThrough(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("0123456789abcdef", 64*1024) // 1 MiB
	cases := []struct {
		name    string
		handler http.HandlerFunc
		check   func(t *testing.T, resp *http.Response, body string)
	}{
		{"chunked with trailer", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
			w.Header().Set("X-Sum", "42")
		}, func(t *testing.T, resp *http.Response, body string) {
			if resp.Request.Method != "HEAD" && (body != "part one, part two" || resp.Trailer.Get("X-Sum") != "42") {
				t.Fatalf("body %q trailer %v", body, resp.Trailer)
			}
		}},
		{"large body", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, big)
		}, func(t *testing.T, resp *http.Response, body string) {
			if resp.Request.Method != "HEAD" && body != big {
				t.Fatalf("body of %d bytes; want %d", len(body), len(big))
			}
		}},
		{"encoding untouched", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Saw-Accept-Encoding", r.Header.Get("Accept-Encoding"))
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, "not really gzip")
		}, func(t *testing.T, resp *http.Response, body string) {
			if resp.Header.Get("X-Saw-Accept-Encoding") != "" || resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("headers %v: the gateway asked for or decoded an encoding", resp.Header)
			}
		}},
		{"no content", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}, func(t *testing.T, resp *http.Response, body string) {
			if resp.StatusCode != 204 || body != "" {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
		}},
		{"early hints first", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "final")
		}, func(t *testing.T, resp *http.Response, body string) {
			if resp.StatusCode != 200 || (resp.Request.Method != "HEAD" && body != "final") {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
		}},
	}
	for _, tc := range cases {
		for _, method := range []string{"GET", "HEAD", "OPTIONS", "DELETE"} {
			t.Run(tc.name+"/"+method, func(t *testing.T) {
				t.Parallel()
				g := newTestGateway(t, Config{})
				b := startBackend(t, "web.1", tc.handler)
				g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{b.Backend}}})
				front := g.front(t, Internal)
				req, _ := http.NewRequest(method, front.URL+"/", nil)
				req.Host = webDNS
				// A bare transport, so the client's own gzip handling does
				// not hide what the gateway did.
				tr := &http.Transport{DisableCompression: true}
				defer tr.CloseIdleConnections()
				resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				if method == "HEAD" && len(body) != 0 {
					t.Fatalf("HEAD answered with a body of %d bytes", len(body))
				}
				tc.check(t, resp, string(body))
			})
		}
	}
}

// A client that leaves mid-body releases the backend connection at once.
func TestClientGoneClosesBackendRequest(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	cancelled := make(chan struct{})
	b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first chunk\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	})
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{b.Backend}}})
	front := g.front(t, Internal)
	conn, err := net.DialTimeout("tcp", hostOf(front), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: "+webDNS+"\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "first chunk\n" {
		t.Fatalf("first chunk %q %v", line, err)
	}
	conn.Close()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("backend request still open 10 s after the client left")
	}
}

// droppingBackend accepts connections and closes them without a word, like
// a process that is going away, after holding them for delay.
func droppingBackend(t *testing.T, task string, delay time.Duration) Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			time.AfterFunc(delay, func() { c.Close() })
		}
	}()
	return backendOf(t, task, ln.Addr().String())
}

func TestBackendDroppingConnectionsIsEjected(t *testing.T) {
	t.Parallel()
	// A backend that takes its time to drop the request must not leave
	// the retry less time than a fresh one.
	for _, delay := range []time.Duration{0, 300 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			t.Parallel()
			g := newTestGateway(t, Config{})
			good := startBackend(t, "web.good", nil)
			g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{droppingBackend(t, "web.drop", delay), good.Backend}}})
			front := g.front(t, Internal)
			for i := 0; i < 6; i++ {
				if status, body := do(t, front, "GET", webDNS, "/", nil); status != 200 {
					t.Fatalf("GET %d: %d %q; want it retried on the good backend", i, status, body)
				}
			}
			if v, _ := metric(t, g.reg, "flotilla_gateway_backend_ejections_total", map[string]string{"app": webID}); v != 1 {
				t.Fatalf("ejections = %v; want 1", v)
			}
		})
	}
}

// The issue's "killing a task under a steady GET load loses no request
// while it is replaced": a backend vanishes (listener and connections
// closed) under load, then the framework's update replaces it.
func TestBackendKilledUnderLoadLosesNoRequest(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	var bs []*testBackend
	for i := 1; i <= 3; i++ {
		bs = append(bs, startBackend(t, fmt.Sprintf("web.%d", i), nil))
	}
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{bs[0].Backend, bs[1].Backend, bs[2].Backend}}})
	front := g.front(t, Internal)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := *front.Client()
			c.Timeout = 10 * time.Second
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", front.URL+"/", nil)
				req.Host = webDNS
				resp, err := c.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	waitFor(t, "steady load", func() bool { return ok.Load() > 100 })
	victim := bs[0]
	victim.srv.Listener.Close()
	victim.srv.CloseClientConnections()
	atKill := ok.Load()
	waitFor(t, "load after the kill", func() bool { return ok.Load() > atKill+100 })
	replacement := startBackend(t, "web.4", nil)
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{bs[1].Backend, bs[2].Backend, replacement.Backend}}})
	waitFor(t, "the replacement serving", func() bool { return replacement.hits.Load() > 20 })
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed around the kill; first: %v", n, n+ok.Load(), firstErr.Load())
	}
}

// flakyConn hands out its data one byte at a time, with a timeout before
// each byte, as a slow backend read under a deadline would.
type flakyConn struct {
	data    string
	timeout bool
}

type testTimeout struct{}

func (testTimeout) Error() string { return "test timeout" }
func (testTimeout) Timeout() bool { return true }

func (c *flakyConn) Read(p []byte) (int, error) {
	if c.timeout = !c.timeout; c.timeout {
		return 0, testTimeout{}
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:1], c.data)
	c.data = c.data[n:]
	return n, nil
}

// Every framing of a response body decodes to the body, and a timeout at
// any byte, even in the middle of a chunk-size line or a trailer, loses
// nothing: the read can simply be tried again.
func TestBodyReaderFramingAndTimeouts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, wire string
		length     int
		want, sum  string
		wantErr    error
	}{
		{"length", "hello world", 11, "hello world", "", nil},
		{"chunked with trailer", "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n", -1, "hello world", "42", nil},
		{"until close", "hello world", -2, "hello world", "", nil},
		{"length cut short", "hello", 11, "hello", "", io.ErrUnexpectedEOF},
		{"chunk cut short", "5\r\nhel", -1, "hel", "", io.ErrUnexpectedEOF},
		{"bad chunk size", "5\r\nhello\r\nzz\r\n", -1, "hello", "", errBadChunk},
	}
	for _, tc := range cases {
		for _, spare := range []int{8, 64} { // smaller and larger than the read buffer
			t.Run(fmt.Sprintf("%s/spare %d", tc.name, spare), func(t *testing.T) {
				t.Parallel()
				var h fasthttp.ResponseHeader
				var r bodyReader
				r.reset(bufio.NewReaderSize(&flakyConn{data: tc.wire}, 16), tc.length, &h)
				var got []byte
				var err error
				for timeouts := 0; timeouts < 1000; {
					var p []byte
					var inBuffer bool
					p, inBuffer, err = r.next(make([]byte, spare))
					if isTimeout(err) {
						timeouts++
						continue
					}
					if err != nil {
						break
					}
					got = append(got, p...)
					if inBuffer {
						r.consume(len(p))
					}
				}
				wantErr := tc.wantErr
				if wantErr == nil {
					wantErr = io.EOF
				}
				if string(got) != tc.want || !errors.Is(err, wantErr) || string(h.Peek("X-Sum")) != tc.sum {
					t.Fatalf("got %q, %v, trailer %q; want %q, %v, %q", got, err, h.Peek("X-Sum"), tc.want, wantErr, tc.sum)
				}
			})
		}
	}
}
