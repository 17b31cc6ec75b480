package gateway

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Request bodies reach the backend whole and framed as the client framed
// them, small or large, with a length or chunked, after a 100 Continue or
// not; a multipart body passes unparsed.
func TestRequestBodiesReachBackend(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("0123456789abcdef", 512*1024) // 8 MiB
	cases := []struct {
		name, method, body, contentType string
		chunked, expect                 bool
	}{
		{"small post", "POST", `{"a":1}`, "application/json", false, false},
		{"large put", "PUT", big, "application/octet-stream", false, false},
		{"chunked post", "POST", big, "", true, false},
		{"expect continue", "POST", big, "text/plain", false, true},
		{"multipart", "POST", "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nfile\r\n--XyZ--\r\n", "multipart/form-data; boundary=XyZ", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newTestGateway(t, Config{})
			b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
				h := sha256.New()
				n, err := io.Copy(h, r.Body)
				fmt.Fprintf(w, "%s %d %s %v te=%v cl=%d ct=%q expect=%q", r.Method, n, hex.EncodeToString(h.Sum(nil)), err, r.TransferEncoding, r.ContentLength, r.Header.Get("Content-Type"), r.Header.Get("Expect"))
			})
			g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{b.Backend}}})
			front := g.front(t, Internal)

			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = struct{ io.Reader }{body} // no length known: chunked
			}
			req, _ := http.NewRequest(tc.method, front.URL+"/upload", body)
			req.Host = webDNS
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			tr := &http.Transport{}
			if tc.expect {
				req.Header.Set("Expect", "100-continue")
				tr.ExpectContinueTimeout = 5 * time.Second
			}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			sum := sha256.Sum256([]byte(tc.body))
			te, cl := "[]", len(tc.body)
			if tc.chunked {
				te, cl = "[chunked]", -1
			}
			want := fmt.Sprintf("%s %d %s <nil> te=%s cl=%d ct=%q expect=\"\"", tc.method, len(tc.body), hex.EncodeToString(sum[:]), te, cl, tc.contentType)
			if resp.StatusCode != 200 || string(got) != want {
				t.Fatalf("%d, backend saw\n%s\nwant\n%s", resp.StatusCode, got, want)
			}
		})
	}
}

// A long body streams: the client has its first part while the backend
// has not written the rest, and no deadline cuts it, even one far shorter
// than the download.
func TestDownloadStreamsWithoutDeadline(t *testing.T) {
	t.Parallel()
	for _, length := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-length %v", length), func(t *testing.T) {
			t.Parallel()
			g := newTestGateway(t, Config{ResponseHeaderTimeout: 100 * time.Millisecond})
			first := strings.Repeat("a", 200<<10) // longer than the gateway copies whole
			rest := strings.Repeat("b", 100<<10)
			gotFirst := make(chan struct{})
			b := startBackend(t, "dl.1", func(w http.ResponseWriter, r *http.Request) {
				if length {
					w.Header().Set("Content-Length", fmt.Sprint(len(first)+len(rest)))
				}
				io.WriteString(w, first)
				w.(http.Flusher).Flush()
				select {
				case <-gotFirst:
				case <-time.After(10 * time.Second):
					return // the gateway held the first part back
				}
				time.Sleep(300 * time.Millisecond) // 3 header timeouts
				io.WriteString(w, rest)
			})
			g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{b.Backend}}})
			front := g.front(t, Internal)
			req, _ := http.NewRequest("GET", front.URL+"/file", nil)
			req.Host = webDNS
			resp, err := front.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			buf := make([]byte, len(first))
			if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != first {
				t.Fatalf("first part: %v", err)
			}
			close(gotFirst)
			tail, err := io.ReadAll(resp.Body)
			if err != nil || string(tail) != rest {
				t.Fatalf("rest: %d bytes, %v", len(tail), err)
			}
		})
	}
}

// The client's connection stays alive across every kind of response, and a
// HEAD keeps the length of the body it does not get.
func TestClientConnectionKeptAlive(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	long := strings.Repeat("x", 300<<10)
	b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/short":
			io.WriteString(w, "short")
		case "/long":
			w.Header().Set("Content-Length", fmt.Sprint(len(long)))
			io.WriteString(w, long)
		case "/chunked":
			io.WriteString(w, "one ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "two")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}
	})
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{b.Backend}}})
	front := g.front(t, Internal)
	conn, err := net.DialTimeout("tcp", hostOf(front), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
		length       int64
	}{
		{"GET", "/short", 200, "short", 5},
		{"GET", "/long", 200, long, int64(len(long))},
		{"GET", "/chunked", 200, "one two", -1},
		{"HEAD", "/long", 200, "", int64(len(long))},
		{"GET", "/empty", 204, "", 0},
		{"GET", "/close", 200, "bye", 3},
		{"GET", "/short", 200, "short", 5},
	} {
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", tc.method, tc.path, webDNS)
		resp, err := http.ReadResponse(br, &http.Request{Method: tc.method})
		if err != nil {
			t.Fatalf("%s %s: %v (the connection was not kept alive)", tc.method, tc.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != tc.status || string(body) != tc.body || resp.ContentLength != tc.length || resp.Close {
			t.Fatalf("%s %s: %d, %d bytes, length %d, close %v, %v", tc.method, tc.path, resp.StatusCode, len(body), resp.ContentLength, resp.Close, err)
		}
	}
}

// Hop-by-hop headers stop at the gateway both ways; an HTTP/1.0 client is
// answered, and the backend still gets HTTP/1.1.
func TestHopByHopHeaders(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		var saw []string
		for _, k := range []string{"Connection", "X-Hop", "Keep-Alive", "Proxy-Authorization", "Te", "X-End-To-End"} {
			if v := r.Header.Get(k); v != "" {
				saw = append(saw, k+"="+v)
			}
		}
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Resp-End", "1")
		fmt.Fprintf(w, "%s %v", r.Proto, saw)
	})
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{b.Backend}}})
	front := g.front(t, Internal)
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		t.Run(proto, func(t *testing.T) {
			got := raw(t, hostOf(front), "GET / "+proto+"\r\nHost: "+webDNS+"\r\nConnection: X-Hop, close\r\nX-Hop: 1\r\n"+
				"Keep-Alive: 300\r\nProxy-Authorization: Basic eDp5\r\nTE: trailers, deflate\r\nX-End-To-End: 1\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(got))), nil)
			if err != nil {
				t.Fatalf("%v in %q", err, got)
			}
			body, _ := io.ReadAll(resp.Body)
			if want := "HTTP/1.1 [Te=trailers X-End-To-End=1]"; string(body) != want {
				t.Fatalf("backend saw %q; want %q", body, want)
			}
			if resp.Header.Get("X-Resp-Hop") != "" || resp.Header.Get("Keep-Alive") != "" || resp.Header.Get("X-Resp-End") != "1" {
				t.Fatalf("client got headers %v", resp.Header)
			}
		})
	}
}

// A client that leaves while the backend is still thinking is counted as
// 499, and the backend's request is closed rather than left running.
func TestClientGoneBeforeAnswer(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	entered, cancelled := make(chan struct{}), make(chan struct{})
	b := startBackend(t, "web.slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
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
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: "+webDNS+"\r\n\r\n")
	<-entered
	conn.Close()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("backend request still open 10 s after the client left")
	}
	waitFor(t, "the request counted as 499", func() bool {
		v, _ := metric(t, g.reg, "flotilla_gateway_requests_total", map[string]string{"app": webID, "task": "web.slow", "code": "4xx"})
		f, _ := metric(t, g.reg, "flotilla_gateway_in_flight_requests", map[string]string{"app": webID})
		return v == 1 && f == 0
	})
	if v, _ := metric(t, g.reg, "flotilla_gateway_backend_ejections_total", map[string]string{"app": webID}); v != 0 {
		t.Fatalf("ejections = %v: a client leaving is not the backend's fault", v)
	}
}

// Shutdown lets requests in flight finish and stops taking new ones.
func TestShutdownIsGraceful(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	entered, release := make(chan struct{}), make(chan struct{})
	b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{b.Backend}}})
	front := g.front(t, Internal)
	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	go func() {
		s, body := do(t, front, "GET", webDNS, "/", nil)
		done <- result{s, body}
	}()
	<-entered
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- g.Shutdown(ctx)
	}()
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", hostOf(front), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if r := <-done; r.status != 200 || r.body != "done" {
		t.Fatalf("in-flight request got %d %q", r.status, r.body)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// HTTP/1.0 has no chunks: a body of unknown length reaches an HTTP/1.0
// client framed by the end of the connection.
func TestHTTP10ClientGetsUnchunkedBody(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	long := strings.Repeat("y", 100<<10)
	b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "one ")
		w.(http.Flusher).Flush()
		io.WriteString(w, long)
	})
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{b.Backend}}})
	front := g.front(t, Internal)
	got := raw(t, hostOf(front), "GET / HTTP/1.0\r\nHost: "+webDNS+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(got))), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "one "+long || len(resp.TransferEncoding) != 0 || !resp.Close {
		t.Fatalf("%d bytes, transfer encoding %v, close %v, %v", len(body), resp.TransferEncoding, resp.Close, err)
	}
}
