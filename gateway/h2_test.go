package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// h2cClient speaks HTTP/2 with prior knowledge over plain TCP (net/http's
// own HTTP/2 client).
func h2cClient(t *testing.T) *http.Client {
	t.Helper()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// h2Do sends one request over client and returns the response with its
// body read; it fails the test unless HTTP/2 was spoken.
func h2Do(t *testing.T, client *http.Client, method, url, host string, hdr http.Header, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", method, url, host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s (Host %s): read body: %v", method, url, host, err)
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s %s answered over %s, not HTTP/2", method, url, resp.Proto)
	}
	return resp, string(b)
}

// Routing over h2c, the exposure rules and the X-Forwarded-* headers are
// those of HTTP/1.1: the same cases as TestListenerSeparation and
// TestForwardedHeaders, on real HTTP/2 clients.
func TestHTTP2CleartextRouting(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	web := startBackend(t, "web.1", nil)
	admin := startBackend(t, "admin.1", nil)
	api := startBackend(t, "api.1", nil)
	g.Update([]App{
		{ID: webID, DNSName: webDNS, Exposure: ext([]string{"shop.example.com"}), Backends: []Backend{web.Backend}},
		{ID: "/prod/shop/api", DNSName: "api-shop-prod.flotilla.mesos", Exposure: ext([]string{"shop.example.com"}, "/api"), Backends: []Backend{api.Backend}},
		{ID: adminID, DNSName: "admin-ops.flotilla.mesos", Exposure: internal([]string{"admin.example.com"}), Backends: []Backend{admin.Backend}},
	})
	fronts := [2]*front{External: g.front(t, External), Internal: g.front(t, Internal)}
	client := h2cClient(t)
	cases := []struct {
		name      string
		l         Listener
		host      string
		path      string
		clientXFF string
		want      int
		wantTask  string
		wantXFF   string
	}{
		{"external app by vhost on external", External, "shop.example.com", "/", "", 200, "web.1", "127.0.0.1"},
		{"path prefix on external", External, "shop.example.com", "/api/v1?x=1", "", 200, "api.1", "127.0.0.1"},
		{"dot segments cannot leave the prefix", External, "shop.example.com", "/api/../admin", "", 200, "web.1", "127.0.0.1"},
		{"external ignores a forged chain", External, "shop.example.com:443", "/", "6.6.6.6", 200, "web.1", "127.0.0.1"},
		{"external app by vhost on internal", Internal, "shop.example.com", "/", "", 200, "web.1", "127.0.0.1"},
		{"external app by dns name on internal", Internal, webDNS, "/", "", 200, "web.1", "127.0.0.1"},
		{"internal appends to the chain", Internal, webDNS, "/", "203.0.113.9", 200, "web.1", "203.0.113.9, 127.0.0.1"},
		{"internal app on internal", Internal, "admin.example.com", "/", "", 200, "admin.1", "127.0.0.1"},
		{"external app by dns name not on external", External, webDNS, "/", "", 404, "", ""},
		{"internal app by vhost not on external", External, "admin.example.com", "/", "", 404, "", ""},
		{"internal app by dns name not on external", External, "admin-ops.flotilla.mesos", "/", "", 404, "", ""},
		{"unknown host on internal", Internal, "nope.example.com", "/", "", 404, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hdr := http.Header{"X-Forwarded-Proto": {"https"}} // forged: the client spoke http
			if tc.clientXFF != "" {
				hdr.Set("X-Forwarded-For", tc.clientXFF)
			}
			resp, body := h2Do(t, client, "GET", fronts[tc.l].URL+tc.path, tc.host, hdr, nil)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, body %q; want %d", resp.StatusCode, body, tc.want)
			}
			if tc.want == 404 {
				if body != notFoundBody {
					t.Fatalf("404 body %q; want the one answer for every unrouted request", body)
				}
				return
			}
			e := decodeEcho(t, body)
			wantPath, _, _ := strings.Cut(tc.path, "?")
			want := echo{Task: tc.wantTask, Host: tc.host, Path: wantPath, XFF: tc.wantXFF, XFHost: tc.host, XFProto: "http"}
			if e != want {
				t.Fatalf("backend saw %+v\nwant %+v", e, want)
			}
		})
	}
}

// h2 is negotiated by ALPN on the TLS listener, next to HTTP/1.1, and the
// backend hears https.
func TestHTTP2OverTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	g := newTestGateway(t, Config{TLSCertFile: certFile, TLSKeyFile: keyFile})
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	web := startBackend(t, "web.1", nil)
	admin := startBackend(t, "admin.1", nil)
	g.Update([]App{
		{ID: webID, DNSName: webDNS, Exposure: ext([]string{"shop.example.com"}), Backends: []Backend{web.Backend}},
		{ID: adminID, DNSName: "admin-ops.flotilla.mesos", Exposure: internal([]string{"admin.example.com"}), Backends: []Backend{admin.Backend}},
	})
	url := "https://" + g.Addr(External).String() + "/p"
	var p http.Protocols
	p.SetHTTP2(true)
	tr := &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "shop.example.com"}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	resp, body := h2Do(t, client, "GET", url, "shop.example.com", http.Header{"X-Forwarded-For": {"6.6.6.6"}}, nil)
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" {
		t.Fatalf("status %d, TLS %+v, body %q; want 200 over ALPN h2", resp.StatusCode, resp.TLS, body)
	}
	want := echo{Task: "web.1", Host: "shop.example.com", Path: "/p", XFF: "127.0.0.1", XFHost: "shop.example.com", XFProto: "https"}
	if e := decodeEcho(t, body); e != want {
		t.Fatalf("backend saw %+v\nwant %+v", e, want)
	}
	resp, body = h2Do(t, client, "GET", url, "admin.example.com", nil, nil)
	if resp.StatusCode != 404 || body != notFoundBody {
		t.Fatalf("internal app over h2 on the external listener: %d %q; want the 404 of an unknown host", resp.StatusCode, body)
	}

	// A client offering both still gets h2; one offering only HTTP/1.1
	// gets that.
	for _, protos := range [][]string{{"h2", "http/1.1"}, {"http/1.1"}} {
		c, err := tls.Dial("tcp", g.Addr(External).String(), &tls.Config{RootCAs: pool, ServerName: "shop.example.com", NextProtos: protos})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.ConnectionState().NegotiatedProtocol; got != protos[0] {
			t.Errorf("client offering %v negotiated %q; want %q", protos, got, protos[0])
		}
		c.Close()
	}
}

// Request bodies of known and unknown length reach the backend, a long
// answer streams, a HEAD has no body, and many streams share one
// connection.
func TestHTTP2Bodies(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	big := strings.Repeat("0123456789abcdef", 64*1024) // 1 MiB: streamed, not copied whole
	b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			got, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.Header().Set("X-Length", strconv.FormatInt(r.ContentLength, 10))
			w.Header().Set("X-TE", strings.Join(r.TransferEncoding, ","))
			w.Write(got)
		case "/big":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			io.WriteString(w, big)
		case "/chunked":
			for i := 0; i < 100; i++ {
				fmt.Fprintf(w, "line %d\n", i)
				w.(http.Flusher).Flush()
			}
		default:
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}
	})
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{b.Backend}}})
	url := g.front(t, Internal).URL
	client := h2cClient(t)

	payload := strings.Repeat("x", 300<<10)
	resp, body := h2Do(t, client, "POST", url+"/echo", webDNS, nil, strings.NewReader(payload))
	if resp.StatusCode != 200 || body != payload || resp.Header.Get("X-Length") != strconv.Itoa(len(payload)) {
		t.Fatalf("known-length upload: %d, %d bytes back, backend saw length %s", resp.StatusCode, len(body), resp.Header.Get("X-Length"))
	}
	// A body whose length the client does not say goes on chunked.
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 10; i++ {
			io.WriteString(pw, "part ")
		}
		pw.Close()
	}()
	resp, body = h2Do(t, client, "PUT", url+"/echo", webDNS, nil, pr)
	if resp.StatusCode != 200 || body != strings.Repeat("part ", 10) || resp.Header.Get("X-TE") != "chunked" {
		t.Fatalf("streamed upload: %d %q, backend saw Transfer-Encoding %q", resp.StatusCode, body, resp.Header.Get("X-TE"))
	}
	resp, body = h2Do(t, client, "GET", url+"/big", webDNS, nil, nil)
	if resp.StatusCode != 200 || body != big || resp.ContentLength != int64(len(big)) {
		t.Fatalf("download: %d, %d bytes (Content-Length %d); want %d", resp.StatusCode, len(body), resp.ContentLength, len(big))
	}
	resp, body = h2Do(t, client, "GET", url+"/chunked", webDNS, nil, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "line 0\n") || !strings.HasSuffix(body, "line 99\n") {
		t.Fatalf("chunked answer: %d %q", resp.StatusCode, body)
	}
	resp, body = h2Do(t, client, "HEAD", url+"/", webDNS, nil, nil)
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 5 {
		t.Fatalf("HEAD: %d %q, Content-Length %d; want 200, no body, 5", resp.StatusCode, body, resp.ContentLength)
	}

	// 64 streams at once over the one connection the transport keeps.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", url+"/echo", bytes.NewReader([]byte(strconv.Itoa(i))))
			req.Host = webDNS
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || string(got) != strconv.Itoa(i) || resp.ProtoMajor != 2 {
				errs <- fmt.Errorf("stream %d: %s %d %q %v", i, resp.Proto, resp.StatusCode, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A client that resets its stream ends the backend request (499), as one
// that closes its HTTP/1.1 connection does; the connection's other
// streams go on.
func TestHTTP2ClientGoneBeforeAnswer(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	entered, cancelled := make(chan struct{}), make(chan struct{})
	b := startBackend(t, "web.slow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			io.WriteString(w, "fast")
			return
		}
		close(entered)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	})
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{b.Backend}}})
	url := g.front(t, Internal).URL
	client := h2cClient(t)
	h2Do(t, client, "GET", url+"/", webDNS, nil, nil) // the connection is up

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/slow", nil)
	req.Host = webDNS
	errc := make(chan error, 1)
	go func() {
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-entered
	cancel()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("backend request still open 10 s after the client reset its stream")
	}
	if err := <-errc; err == nil {
		t.Fatal("the cancelled request succeeded")
	}
	waitFor(t, "the request counted as 499", func() bool {
		v, _ := metric(t, g.reg, "flotilla_gateway_requests_total", map[string]string{"app": webID, "task": "web.slow", "code": "4xx"})
		f, _ := metric(t, g.reg, "flotilla_gateway_in_flight_requests", map[string]string{"app": webID})
		return v == 1 && f == 0
	})
	if resp, body := h2Do(t, client, "GET", url+"/", webDNS, nil, nil); resp.StatusCode != 200 || body != "fast" {
		t.Fatalf("after the reset: %d %q", resp.StatusCode, body)
	}
}

// Shutdown tells HTTP/2 clients to go away (GOAWAY) and waits for the
// request in flight.
func TestHTTP2ShutdownIsGraceful(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	entered, release := make(chan struct{}), make(chan struct{})
	b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{b.Backend}}})
	url := g.front(t, Internal).URL
	client := h2cClient(t)
	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", url+"/slow", nil)
		req.Host = webDNS
		resp, err := client.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- g.Shutdown(ctx)
	}()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with an HTTP/2 request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := <-res; r.err != nil || r.status != 200 || r.body != "done" {
		t.Fatalf("request in flight during shutdown: %d %q %v", r.status, r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// An HTTP/1.1 request whose first bytes arrive alone and look like the
// start of the HTTP/2 preface is still HTTP/1.1.
func TestHTTP1StartingLikePreface(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	web := startBackend(t, "web.1", nil)
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{web.Backend}}})
	front := g.front(t, Internal)
	for _, split := range []int{1, 2, 3} {
		c, err := net.DialTimeout("tcp", hostOf(front), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		req := "POST /p HTTP/1.1\r\nHost: " + webDNS + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
		if _, err := io.WriteString(c, req[:split]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, req[split:]); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || !bytes.HasPrefix(b, []byte("HTTP/1.1 200 ")) || !bytes.Contains(b, []byte(`"Task":"web.1"`)) {
			t.Fatalf("request split after %d bytes: %v\n%s", split, err, b)
		}
	}
}

// BenchmarkProxyHTTP2 is BenchmarkProxy's 6-byte GET over h2c: the
// HTTP/2 client and server of net/http are in the figures (they allocate per
// request), so compare it with itself, and with nginx in
// bench/gateway/run-h2.sh.
func BenchmarkProxyHTTP2(b *testing.B) {
	backend := startBackend(b, "web.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "6")
		io.WriteString(w, "hello\n")
	})
	g := newTestGateway(b, Config{})
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{backend.Backend}}})
	if err := g.Start(); err != nil {
		b.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest("GET", "http://"+g.Addr(Internal).String()+"/", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Host = webDNS
	buf := make([]byte, 64)
	do := func() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.ReadFull(resp.Body, buf[:6])
		resp.Body.Close()
		if resp.StatusCode != 200 || n != 6 || resp.ProtoMajor != 2 {
			b.Fatalf("%s %d, %d bytes", resp.Proto, resp.StatusCode, n)
		}
	}
	for range 100 {
		do()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		do()
	}
}
