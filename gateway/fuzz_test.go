package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/valyala/fasthttp"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// fuzzClient is the address every fuzzed request comes from.
var fuzzClient = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000}

// FuzzGatewayRequest serves any bytes as one client connection to the
// external or the internal listener (fasthttp's parsing, routing on Host
// and path, the header rewrite, a real backend exchange). Properties:
//   - the listener serves the connection to its end within 10 s and
//     nothing panics (the handler's recover answers 500, and logs it);
//   - the external listener never reaches an internal app;
//   - what a backend receives carries no hop-by-hop header (Keep-Alive,
//     Proxy-*, Trailer; TE only as "trailers"; Upgrade only with
//     Connection: Upgrade), exactly one X-Forwarded-Proto, and an
//     X-Forwarded-For that ends with the client, and on the external
//     listener is the client alone (a client cannot forge it there).
//
// Seeds are in testdata/fuzz/FuzzGatewayRequest.
func FuzzGatewayRequest(f *testing.F) {
	hook := &gwPanicHook{}
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	lg.AddHook(hook)
	g := newTestGateway(f, Config{Log: logging.Component(lg, "gateway"), ResponseHeaderTimeout: 5 * time.Second})
	ext, in := echoBackend(f, appspec.ExposureExternal), echoBackend(f, appspec.ExposureInternal)
	app := func(id, mode string, vhosts, paths []string, b Backend) App {
		return App{ID: id, DNSName: strings.Trim(strings.ReplaceAll(id, "/", "-"), "-") + ".flotilla.mesos",
			Exposure: appspec.Exposure{Mode: mode, VHosts: vhosts, Paths: paths}, Backends: []Backend{b}}
	}
	g.Update([]App{
		app("/ext", appspec.ExposureExternal, []string{"ext.example.com", "*.wild.example.com"}, nil, backendOf(f, "ext.1", ext)),
		app("/extpath", appspec.ExposureExternal, nil, []string{"/pub"}, backendOf(f, "extpath.1", ext)),
		app("/int", appspec.ExposureInternal, []string{"int.example.com"}, nil, backendOf(f, "int.1", in)),
		app("/intpath", appspec.ExposureInternal, nil, []string{"/priv"}, backendOf(f, "intpath.1", in)),
	})
	if errs := g.Problems(); len(errs) > 0 {
		f.Fatalf("fixture routes: %v", errs)
	}
	servers := [2]*fasthttp.Server{Internal: g.newServer(Internal, nil), External: g.newServer(External, nil)}

	f.Fuzz(func(t *testing.T, raw []byte, external bool) {
		l := Internal
		if external {
			l = External
		}
		c := &fuzzConn{in: bytes.NewReader(raw)}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = servers[l].ServeConn(c)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the %s listener still serves the connection after 10 s", l)
		}
		if p := hook.take(); p != "" {
			t.Fatalf("the gateway panicked: %s", p)
		}
		br := bufio.NewReader(bytes.NewReader(c.written()))
		for {
			var resp fasthttp.Response
			if err := resp.Read(br); err != nil {
				return // the end, or a HEAD answer read with a body: stop checking
			}
			who := string(resp.Header.Peek("X-Echo-Exposure"))
			if who == "" {
				if resp.StatusCode() == fasthttp.StatusInternalServerError {
					t.Fatalf("the gateway answered 500: %s", resp.Body())
				}
				continue
			}
			if external && who != appspec.ExposureExternal {
				t.Fatalf("the external listener reached an %s app", who)
			}
			var seen echoed
			if err := json.Unmarshal(resp.Body(), &seen); err != nil {
				continue // a HEAD, or a body cut short
			}
			checkForwarded(t, l, seen)
		}
	})
}

// echoed is what echoBackend answers: the request as it arrived.
type echoed struct {
	Header http.Header
}

func echoBackend(tb testing.TB, exposure string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Echo-Exposure", exposure)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Header: r.Header})
	}))
	tb.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func checkForwarded(t *testing.T, l Listener, seen echoed) {
	t.Helper()
	h := seen.Header
	for _, k := range []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Trailer"} {
		if v, ok := h[k]; ok {
			t.Fatalf("the backend received hop-by-hop %s: %q", k, v)
		}
	}
	if te, ok := h["Te"]; ok && (len(te) != 1 || te[0] != "trailers") {
		t.Fatalf("the backend received TE %q", te)
	}
	if up, ok := h["Upgrade"]; ok && !strings.EqualFold(h.Get("Connection"), "Upgrade") {
		t.Fatalf("the backend received Upgrade %q with Connection %q", up, h["Connection"])
	}
	if p := h["X-Forwarded-Proto"]; len(p) != 1 || p[0] != "http" {
		t.Fatalf("the backend received X-Forwarded-Proto %q", p)
	}
	xff := h["X-Forwarded-For"]
	want := fuzzClient.IP.String()
	if len(xff) != 1 || !(xff[0] == want || strings.HasSuffix(xff[0], ", "+want)) {
		t.Fatalf("the backend received X-Forwarded-For %q", xff)
	}
	if l == External && xff[0] != want {
		t.Fatalf("a client forged X-Forwarded-For through the external listener: %q", xff)
	}
}

// fuzzConn is a client connection that sends its bytes, then EOF, and
// keeps what the server writes back.
type fuzzConn struct {
	in  *bytes.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *fuzzConn) Read(p []byte) (int, error) { return c.in.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}
func (c *fuzzConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.out.Bytes()...)
}
func (c *fuzzConn) Close() error                     { return nil }
func (c *fuzzConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000} }
func (c *fuzzConn) RemoteAddr() net.Addr             { return fuzzClient }
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// gwPanicHook keeps the first panic the handler recovered from.
type gwPanicHook struct {
	mu    sync.Mutex
	panic string
}

func (h *gwPanicHook) Levels() []logrus.Level { return []logrus.Level{logrus.ErrorLevel} }
func (h *gwPanicHook) Fire(e *logrus.Entry) error {
	if strings.Contains(e.Message, "panicked") {
		h.mu.Lock()
		if h.panic == "" {
			h.panic = e.Message + ": " + strings.TrimSpace(e.Data["panic"].(string)) + "\n" + e.Data["stack"].(string)
		}
		h.mu.Unlock()
	}
	return nil
}

func (h *gwPanicHook) take() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.panic
	h.panic = ""
	return p
}
