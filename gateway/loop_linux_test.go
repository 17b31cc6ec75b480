//go:build linux

package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"
)

// The event loops serve the common request themselves, pipelined ones in
// order, and hand what they do not do to the goroutine path, which answers
// it as it would without them. The whole gateway suite also runs on the
// loops (FLOTILLA_GATEWAY_EVENT_LOOP=1, make test); this test shows which
// path served what, by the handoff counter.
func TestEventLoopServesAndHandsOver(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{EventLoop: true})
	big := strings.Repeat("x", 200<<10) // streams: longer than inlineBody
	// Answered whole by the loop, from its buffers for long answers
	// (room, trim): each one different, so a buffer reused too early
	// shows.
	mid := func(s string) string { return strings.Repeat(s, 40<<10+len(s)*1000) }
	web := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			io.WriteString(w, big)
		case "/mid/a", "/mid/b", "/mid/c":
			b := mid(r.URL.Path[5:])
			w.Header().Set("Content-Length", strconv.Itoa(len(b))) // else net/http streams it chunked
			io.WriteString(w, b)
		case "/post":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "got %q", b)
		default:
			fmt.Fprintf(w, "%s %s xff=%s", r.Method, r.URL.Path, r.Header.Get("X-Forwarded-For"))
		}
	})
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{web.Backend}}})
	front := g.front(t, Internal)
	handoffs := func(reason string) float64 {
		v, _ := metric(t, g.reg, "flotilla_gateway_loop_handoffs_total", map[string]string{"listener": "internal", "reason": reason})
		return v
	}

	// Three pipelined requests in one write, then three more one by one,
	// on one connection: all answered in order by the loop.
	c, err := net.DialTimeout("tcp", hostOf(front), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: " + webDNS + "\r\n\r\n" }
	if _, err := io.WriteString(c, req("/a")+req("/b")+req("/c")); err != nil {
		t.Fatal(err)
	}
	read := func(want string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer to %s: %v", want, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("answer %d %q (%v); want 200 %q", resp.StatusCode, b, err, want)
		}
	}
	for _, p := range []string{"/a", "/b", "/c"} {
		read("GET " + p + " xff=127.0.0.1")
	}
	for _, p := range []string{"/d", "/e", "/f"} {
		io.WriteString(c, req(p))
		read("GET " + p + " xff=127.0.0.1")
	}
	// Long answers (40 KiB), pipelined among short ones.
	io.WriteString(c, req("/mid/a")+req("/s1")+req("/mid/bb")+req("/mid/b")+req("/mid/c"))
	read(mid("a"))
	read("GET /s1 xff=127.0.0.1")
	read("GET /mid/bb xff=127.0.0.1")
	read(mid("b"))
	read(mid("c"))
	for _, p := range []string{"/mid/c", "/mid/a", "/mid/b"} {
		io.WriteString(c, req(p))
		read(mid(p[5:]))
	}
	for _, r := range []string{handoffRequest, handoffStream, handoffHTTP2, handoffMalformed, handoffNoBackend, handoffBackendName} {
		if v := handoffs(r); v != 0 {
			t.Fatalf("handoffs{%s} = %v after plain GETs; the loop should have served them", r, v)
		}
	}

	// A body goes to the goroutine path with the connection, which then
	// serves what comes next on it too.
	io.WriteString(c, "POST /post HTTP/1.1\r\nHost: "+webDNS+"\r\nContent-Length: 5\r\n\r\nhello")
	read(`got "hello"`)
	io.WriteString(c, req("/g"))
	read("GET /g xff=127.0.0.1")
	if v := handoffs(handoffRequest); v != 1 {
		t.Fatalf("handoffs{request} = %v; want 1", v)
	}

	// A long answer streams on the goroutine path, from where the loop
	// left it (the head read), whole.
	status, body := do(t, front, "GET", webDNS, "/big", nil)
	if status != 200 || body != big {
		t.Fatalf("/big: %d, %d bytes; want 200, %d", status, len(body), len(big))
	}
	if v := handoffs(handoffStream); v != 1 {
		t.Fatalf("handoffs{stream} = %v; want 1", v)
	}

	// A backend known by name is dialled by the goroutine path.
	named := web.Backend
	named.Host, named.TaskID = "localhost", "web.named"
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{named}}})
	// (A new connection: the client's kept-alive ones were handed over.)
	if got := string(raw(t, hostOf(front), "GET /n HTTP/1.1\r\nHost: "+webDNS+"\r\nConnection: close\r\n\r\n")); !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.HasSuffix(got, "GET /n xff=127.0.0.1") {
		t.Fatalf("named backend: %q", got)
	}
	if v := handoffs(handoffBackendName); v != 1 {
		t.Fatalf("handoffs{backend_name} = %v; want 1", v)
	}
}

// A loop out of file descriptors backs off instead of spinning on the
// listener (which stays readable), says so once, and accepts again once
// descriptors are free. It lowers the open-files limit, so it runs in a
// process of its own.
func TestEventLoopOutOfDescriptors(t *testing.T) {
	if os.Getenv("FLOTILLA_LOOP_EMFILE_CHILD") != "1" {
		t.Parallel()
		cmd := exec.Command(os.Args[0], "-test.run=^TestEventLoopOutOfDescriptors$", "-test.v")
		cmd.Env = append(os.Environ(), "FLOTILLA_LOOP_EMFILE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestEventLoopOutOfDescriptors") {
			t.Fatalf("the child test: %v\n%s", err, out)
		}
		return
	}
	logger, hook := logtest.NewNullLogger()
	g := newTestGateway(t, Config{EventLoop: true, Log: logger.WithField("component", "gateway")})
	g.Update(nil) // every request is the loop's own 404
	front := g.front(t, Internal)
	addr := g.Addr(Internal).(*net.TCPAddr)
	var sa unix.SockaddrInet4
	copy(sa.Addr[:], addr.IP.To4())
	sa.Port = addr.Port

	// Client sockets first, while there are descriptors for them; then a
	// limit that leaves the gateway room for two connections.
	var clients []int
	for i := 0; i < 8; i++ {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, fd)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(len(open)) + 1 // ReadDir's own descriptor is closed again
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	for _, fd := range clients {
		if err := unix.Connect(fd, &sa); err != nil { // the kernel's backlog takes them
			t.Fatal(err)
		}
	}
	backingOff := func() int {
		n := 0
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, "backing off") {
				n++
			}
		}
		return n
	}
	waitFor(t, "the loop to back off", func() bool { return backingOff() > 0 })

	// Descriptors back: the clients close and the limit is raised; the
	// queued connections are accepted (and end), and a new request is
	// answered.
	for _, fd := range clients {
		unix.Close(fd)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the loop to accept again", func() bool {
		for _, e := range hook.AllEntries() {
			if e.Message == "gateway loop: accepting connections again" {
				return true
			}
		}
		return false
	})
	if got := string(raw(t, hostOf(front), "GET / HTTP/1.1\r\nHost: x.example.com\r\nConnection: close\r\n\r\n")); !strings.HasPrefix(got, "HTTP/1.1 404 ") {
		t.Fatalf("after the back-off: %q", got)
	}
	if n := backingOff(); n != 1 {
		t.Fatalf("the back-off was logged %d times; want once (a loop spinning on its listener logs on every try)", n)
	}
}

// The loops run one per P and keep one P more, so that the runtime does
// not take a waiting loop's P away (spareP); the P is given back when the
// last loops end. Not parallel: GOMAXPROCS is the process's.
func TestEventLoopSpareP(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	g := newTestGateway(t, Config{EventLoop: true})
	g.front(t, Internal) // starts it
	if got := runtime.GOMAXPROCS(0); got != before+1 {
		t.Fatalf("GOMAXPROCS with the loops running = %d, want %d (one spare over %d)", got, before+1, before)
	}
	if n := len(g.loops.all); n != before {
		t.Fatalf("%d loops, want one per P as it was (%d)", n, before)
	}
	second := newTestGateway(t, Config{EventLoop: true})
	second.front(t, Internal)
	if got := runtime.GOMAXPROCS(0); got != before+1 || len(second.loops.all) != before {
		t.Fatalf("a second gateway's loops: GOMAXPROCS %d, %d loops; want %d and %d", got, len(second.loops.all), before+1, before)
	}
	for i, gw := range []*testGW{g, second} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := gw.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		want := before + 1
		if i == 1 {
			want = before
		}
		if got := runtime.GOMAXPROCS(0); got != want {
			t.Fatalf("GOMAXPROCS after %d of 2 gateways shut down = %d, want %d", i+1, got, want)
		}
	}
}
