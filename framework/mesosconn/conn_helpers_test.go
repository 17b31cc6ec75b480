package mesosconn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// haMaster is a stand-in Mesos master for the connection tests: the v1
// scheduler API over httptest, JSON in RecordIO frames as MESOS.md says,
// one subscription at a time (a new SUBSCRIBE replaces the old stream).
type haMaster struct {
	t   testing.TB
	srv *httptest.Server
	id  string

	mu         sync.Mutex
	heartbeat  float64
	redirect   string // answer SUBSCRIBE with 307 to this Location
	refuse     string // answer SUBSCRIBE with this ERROR message
	offerOnSub bool   // send one OFFERS right after SUBSCRIBED
	nextFW     int
	nextOffer  int
	streamID   string
	stream     chan *scheduler.Event
	endStream  chan struct{}
	subscribes []*scheduler.Call
	calls      []haCall
}

type haCall struct {
	call     *scheduler.Call
	streamID string
	at       time.Time
}

func newHAMaster(t testing.TB, id string) *haMaster {
	m := &haMaster{
		t: t, id: id, heartbeat: 15,
	}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(func() {
		m.drop()
		m.srv.CloseClientConnections()
		m.srv.Close()
	})
	return m
}

// URL is the scheduler API URL.
func (m *haMaster) URL() string { return m.srv.URL + schedulerAPIPath }

// HostPort is the listener's address.
func (m *haMaster) HostPort() string { return strings.TrimPrefix(m.srv.URL, "http://") }

func (m *haMaster) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != schedulerAPIPath {
		http.Error(w, "not here", http.StatusNotFound)
		return
	}
	call := new(scheduler.Call)
	if err := json.NewDecoder(r.Body).Decode(call); err != nil {
		http.Error(w, "bad call: "+err.Error(), http.StatusBadRequest)
		return
	}
	if call.GetType() == scheduler.Call_SUBSCRIBE {
		m.subscribe(w, r, call)
		return
	}
	m.mu.Lock()
	sid := r.Header.Get("Mesos-Stream-Id")
	ok := sid != "" && sid == m.streamID
	m.calls = append(m.calls, haCall{call: call, streamID: sid, at: time.Now()})
	m.mu.Unlock()
	if !ok {
		http.Error(w, "stream id mismatch", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (m *haMaster) subscribe(w http.ResponseWriter, r *http.Request, call *scheduler.Call) {
	m.mu.Lock()
	m.subscribes = append(m.subscribes, call)
	if m.redirect != "" {
		loc := m.redirect
		m.mu.Unlock()
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	// A new subscription replaces the old one, as in Mesos.
	if m.endStream != nil {
		close(m.endStream)
	}
	stream, end := make(chan *scheduler.Event, 64), make(chan struct{})
	m.stream, m.endStream = stream, end
	m.streamID = fmt.Sprintf("stream-%d", len(m.subscribes))
	w.Header().Set("Mesos-Stream-Id", m.streamID)
	id := call.GetFrameworkID().GetValue()
	if id == "" {
		m.nextFW++
		id = fmt.Sprintf("%s-%04d", m.id, m.nextFW)
	}
	if m.refuse != "" {
		stream <- &scheduler.Event{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: m.refuse}}
		m.refuse = ""
		close(end)
		m.endStream = nil
	} else {
		hb := m.heartbeat
		stream <- &scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{
			FrameworkID:              &mesos.FrameworkID{Value: id},
			HeartbeatIntervalSeconds: &hb,
		}}
		if m.offerOnSub {
			stream <- m.offersEventLocked(id)
		}
	}
	m.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	rw := recordio.NewWriter(w)
	for {
		select {
		case ev := <-stream:
			b, err := json.Marshal(ev)
			if err != nil {
				m.t.Errorf("haMaster: encode event: %v", err)
				return
			}
			if err := rw.WriteFrame(b); err != nil {
				return
			}
			fl.Flush()
		case <-end:
			// Flush what was queued before the end (an ERROR, say).
			for {
				select {
				case ev := <-stream:
					b, _ := json.Marshal(ev)
					_ = rw.WriteFrame(b)
				default:
					fl.Flush()
					return
				}
			}
		case <-r.Context().Done():
			return
		}
	}
}

func (m *haMaster) offersEventLocked(fw string) *scheduler.Event {
	m.nextOffer++
	return &scheduler.Event{Type: scheduler.Event_OFFERS, Offers: &scheduler.Event_Offers{Offers: []mesos.Offer{{
		ID:          mesos.OfferID{Value: fmt.Sprintf("%s-O%d", m.id, m.nextOffer)},
		FrameworkID: mesos.FrameworkID{Value: fw},
		AgentID:     mesos.AgentID{Value: m.id + "-S1"},
		Hostname:    "h1",
	}}}}
}

// send queues an event on the current stream; false if there is none.
func (m *haMaster) send(ev *scheduler.Event) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.endStream == nil {
		return false
	}
	select {
	case m.stream <- ev:
		return true
	default:
		return false
	}
}

// drop ends the current stream, as a master that closes the connection.
func (m *haMaster) drop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.endStream != nil {
		close(m.endStream)
		m.endStream = nil
		m.streamID = ""
	}
}

func (m *haMaster) set(f func(m *haMaster)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

func (m *haMaster) subscribeCalls() []*scheduler.Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*scheduler.Call(nil), m.subscribes...)
}

func (m *haMaster) otherCalls() []haCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]haCall(nil), m.calls...)
}

// haIDStore is an in-memory FrameworkIDStore that can be made to fail.
type haIDStore struct {
	mu   sync.Mutex
	id   string
	sets []string
	fail error
}

func (s *haIDStore) FrameworkID(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return "", s.fail
	}
	return s.id, nil
}

func (s *haIDStore) SetFrameworkID(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.id = id
	s.sets = append(s.sets, id)
	return nil
}

func (s *haIDStore) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// haLog is a logger for tests; FLOTILLA_TEST_LOG=debug shows it.
func haLog(t testing.TB, name string) *logrus.Entry {
	l := logging.Discard()
	if lv, err := logrus.ParseLevel(strings.ToLower(os.Getenv("FLOTILLA_TEST_LOG"))); err == nil {
		l.Out = testWriter{t}
		l.SetLevel(lv)
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "15:04:05.000"})
	}
	return logging.Component(l, name)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// haNext returns the next Input within d or fails.
func haNext(t *testing.T, in <-chan framework.Input, d time.Duration) framework.Input {
	t.Helper()
	select {
	case i := <-in:
		return i
	case <-time.After(d):
		t.Fatalf("no input within %v", d)
		return framework.Input{}
	}
}

// haNoInput fails if an Input arrives within d.
func haNoInput(t *testing.T, in <-chan framework.Input, d time.Duration) {
	t.Helper()
	select {
	case i := <-in:
		t.Fatalf("unexpected input %s", haDescribe(i))
	case <-time.After(d):
	}
}

func haDescribe(i framework.Input) string {
	if i.Event != nil {
		return i.Event.GetType().String()
	}
	return fmt.Sprintf("Disconnected(%v)", i.Disconnected)
}

var errHAStore = errors.New("store down")

// haStepArmed steps clk by d, then waits until clk has armed timers again
// (the conn re-arms its watchdog after it fires), so the next step cannot
// overtake a goroutine that has not yet handled this one.
func haStepArmed(t *testing.T, clk *clock.Fake, d time.Duration, armed int) {
	t.Helper()
	clk.Step(d)
	deadline := time.Now().Add(10 * time.Second)
	for clk.Waiters() < armed {
		if time.Now().After(deadline) {
			t.Fatalf("after stepping to %v: %d timers armed, want %d (the conn did not re-arm its watchdog)", clk.Now(), clk.Waiters(), armed)
		}
		time.Sleep(time.Millisecond)
	}
}

// haWaitReader waits until the conn's current event reader satisfies ok.
func haWaitReader(t *testing.T, c *Conn, what string, ok func(*eventReader) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := c.reader.Load()
		if r != nil && ok(r) {
			return
		}
		if time.Now().After(deadline) {
			if r == nil {
				t.Fatalf("%s: no subscription stream after 10 s", what)
			}
			t.Fatalf("%s: not after 10 s (handed %d, handing %v)", what, r.handed.Load(), r.handing.Load())
		}
		time.Sleep(time.Millisecond)
	}
}
