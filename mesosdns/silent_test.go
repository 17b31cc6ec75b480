package mesosdns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// Failures that cost something but stop nothing are logged with what was
// lost; these tests read the log lines (they were silent before).

// hookedConfig is testConfig with a logger whose entries the test reads.
func hookedConfig(t *testing.T) (Config, *logtest.Hook) {
	t.Helper()
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	cfg := testConfig()
	cfg.Log = l.WithField("component", "mesosdns")
	return cfg, hook
}

// entry is the first entry whose message contains msg, or nil.
func entry(hook *logtest.Hook, msg string) *logrus.Entry {
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, msg) {
			return e
		}
	}
	return nil
}

func messages(hook *logtest.Hook) []string {
	var out []string
	for _, e := range hook.AllEntries() {
		out = append(out, e.Level.String()+": "+e.Message)
	}
	return out
}

// TestStartSaysUpstreamsWereNotReread: Start re-reads the upstreams once
// it knows its bound address; when resolv.conf has gone meanwhile, the
// server forwards with the list New read and says so, naming that list
// and the error (the error was dropped).
func TestStartSaysUpstreamsWereNotReread(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 127.0.0.53\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, hook := hookedConfig(t)
	cfg.Upstreams, cfg.ResolvConf = nil, conf
	s := newTestServer(t, cfg)
	if err := os.Remove(conf); err != nil {
		t.Fatal(err)
	}
	startServer(t, s)
	e := entry(hook, "upstream resolvers not re-read")
	if e == nil {
		t.Fatalf("no log line says the upstreams were not re-read; logged: %q", messages(hook))
	}
	if e.Level != logrus.WarnLevel {
		t.Errorf("logged at %v, want warning", e.Level)
	}
	if got := fmt.Sprint(e.Data["upstreams"]); got != "[127.0.0.53:53]" {
		t.Errorf("upstreams field = %s, want the list read at start [127.0.0.53:53]", got)
	}
	if err, _ := e.Data[logrus.ErrorKey].(error); err == nil || !strings.Contains(err.Error(), conf) {
		t.Errorf("error field = %v, want one naming %s", e.Data[logrus.ErrorKey], conf)
	}
	if got := fmt.Sprint(s.upstreams); got != "[127.0.0.53:53]" {
		t.Errorf("forwarding to %s, want the list read at start", got)
	}
}

// failingWriter refuses every reply, as a client gone or a full socket;
// panicAddr makes RemoteAddr panic, a handler bug as seen by ServeDNS.
type failingWriter struct {
	*fakeWriter
	panicAddr bool
}

func (w *failingWriter) RemoteAddr() net.Addr {
	if w.panicAddr {
		panic("remote address unknown")
	}
	return w.fakeWriter.RemoteAddr()
}
func (w *failingWriter) WriteMsg(*dns.Msg) error { return errors.New("reply not sent") }

// TestUnsentServfailIsLogged: a SERVFAIL that could not be written (over
// the in-flight cap, or after a handler panic) is logged at debug like
// every other reply that could not be written (it was dropped).
func TestUnsentServfailIsLogged(t *testing.T) {
	q := new(dns.Msg)
	q.SetQuestion("web.marathon.mesos.", dns.TypeA)
	for _, tc := range []struct {
		name, want string
		setup      func(*Server)
		w          *failingWriter
	}{
		{"over the cap", "write SERVFAIL reply (over the concurrency cap)",
			func(s *Server) { s.inflight.Store(int64(s.cfg.MaxInFlight)) }, &failingWriter{fakeWriter: newUDPWriter("127.0.0.1")}},
		{"after a panic", "write SERVFAIL reply after a panic",
			func(*Server) {}, &failingWriter{fakeWriter: newUDPWriter("127.0.0.1"), panicAddr: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, hook := hookedConfig(t)
			s := newTestServer(t, cfg)
			tc.setup(s)
			s.ServeDNS(tc.w, q)
			e := entry(hook, tc.want)
			if e == nil {
				t.Fatalf("no %q line; logged: %q", tc.want, messages(hook))
			}
			if err, _ := e.Data[logrus.ErrorKey].(error); err == nil || err.Error() != "reply not sent" {
				t.Errorf("error field = %v, want the writer's error", e.Data[logrus.ErrorKey])
			}
		})
	}
}
