package mesosconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/client"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// fuzzT0 is the fake clock's start.
var fuzzT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// FuzzMasterStream is what a hostile or buggy master can send on a
// subscription: any bytes, read as Conn reads them (frameGuard, then
// mesos-go's RecordIO reader and codec, then the eventReader), in JSON or
// protobuf. Properties:
//   - nothing panics: not the reader (whose recover would hide it in
//     production, so its "panicked" error fails here) and not the
//     scheduler loop the decoded events are fed to (its recovered panics
//     are caught from its log);
//   - ErrBadFrame only for a stream whose framing really is bad, and
//     never more events than frames;
//   - every announced heartbeat interval maps into [minHeartbeat,
//     maxHeartbeat] (or the default).
//
// Seeds are in testdata/fuzz/FuzzMasterStream; FLOTILLA_WRITE_SEEDS=1
// go test -run TestWriteMasterStreamSeeds ./framework/ rewrites the
// generated ones.
func FuzzMasterStream(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte, useJSON bool) {
		codec := codecs.ByMediaType[codecs.MediaTypeProtobuf]
		if useJSON {
			codec = codecs.ByMediaType[codecs.MediaTypeJSON]
		}
		evs, err := readStream(t, codec, stream)
		frames, framingOK := refFrames(stream)
		if errors.Is(err, ErrBadFrame) && framingOK {
			t.Fatalf("ErrBadFrame on a well-framed stream (%d frames): %v", frames, err)
		}
		if len(evs) > frames {
			t.Fatalf("%d events from %d frames", len(evs), frames)
		}
		for _, ev := range evs {
			if sub := ev.GetSubscribed(); sub != nil {
				d, _ := heartbeatInterval(sub.GetHeartbeatIntervalSeconds())
				if d != defaultHeartbeat && (d < minHeartbeat || d > maxHeartbeat) {
					t.Fatalf("heartbeat %v for an announced %v s", d, sub.GetHeartbeatIntervalSeconds())
				}
			}
		}
		feedScheduler(t, evs)
	})
}

// readStream decodes stream as Conn does and returns the events the
// eventReader hands over (HEARTBEATs dropped) and the error that ended it.
func readStream(t *testing.T, codec encoding.Codec, stream []byte) ([]*scheduler.Event, error) {
	t.Helper()
	hres := &http.Response{StatusCode: http.StatusOK, ContentLength: -1,
		Header: http.Header{"Content-Type": {codec.Type.ContentType()}},
		Body:   io.NopCloser(&chunkReader{b: stream})}
	guardStream(hres)
	cli := httpcli.New(httpcli.Codec(codec))
	resp, err := cli.HandleResponse(hres, client.ResponseClassAuto, nil)
	if err != nil {
		t.Fatalf("response refused before any event: %v", err)
	}
	defer resp.Close()
	rd := newEventReader(resp, clock.NewFake(fuzzT0))
	go rd.run(logging.Component(logging.Discard(), "conn"))
	defer rd.stop()
	var evs []*scheduler.Event
	for d := range rd.events {
		if d.err != nil {
			if strings.Contains(d.err.Error(), "panicked") {
				t.Fatalf("event reader: %v", d.err)
			}
			return evs, d.err
		}
		evs = append(evs, d.ev)
	}
	return evs, nil
}

// chunkReader hands its bytes out 1 to 7 at a time, so framing is
// checked across reads as on a network stream.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	r.n = r.n%7 + 1
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}

// refFrames counts the non-empty frames of a RecordIO stream, written
// plainly over the whole buffer; ok is false when a length line is bad or
// over MaxFrameBytes (a truncated last frame is not a framing error here).
func refFrames(b []byte) (n int, ok bool) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return n, len(b) <= maxSizeDigits
		}
		if i > maxSizeDigits {
			return n, false
		}
		size, err := strconv.ParseUint(string(bytes.TrimSpace(b[:i])), 10, 64)
		if err != nil || size > MaxFrameBytes {
			return n, false
		}
		b = b[i+1:]
		if size > 0 {
			n++
		}
		b = b[min(uint64(len(b)), size):]
	}
	return n, true
}

// panicHook notes the scheduler's recovered panics.
type panicHook struct {
	mu     sync.Mutex
	panics []string
}

func (h *panicHook) Levels() []logrus.Level { return []logrus.Level{logrus.ErrorLevel} }
func (h *panicHook) Fire(e *logrus.Entry) error {
	if strings.Contains(e.Message, "panicked") {
		h.mu.Lock()
		h.panics = append(h.panics, fmt.Sprintf("%s: %v\n%v", e.Message, e.Data["panic"], e.Data["stack"]))
		h.mu.Unlock()
	}
	return nil
}

// feedScheduler runs a fresh scheduler with one app over the events.
func feedScheduler(t *testing.T, evs []*scheduler.Event) {
	t.Helper()
	clk := clock.NewFake(fuzzT0)
	hook := &panicHook{}
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	lg.AddHook(hook)
	s := framework.New(framework.Config{Clock: clk, Rand: rand.New(rand.NewSource(1)), Log: logging.Component(lg, "framework"), ReconcileSettle: -1})
	s.PutApp(appspec.App{
		ID: "/web", Version: "v1", Instances: 3, CPUs: 0.5, Mem: 64,
		Container:       &appspec.Container{Type: "DOCKER", Docker: &appspec.Docker{Image: "flotilla/testapp:dev", Network: "HOST"}},
		PortDefinitions: []appspec.PortDefinition{{Port: 0, Name: "http"}},
		BackoffSeconds:  1, BackoffFactor: 2, MaxLaunchDelaySeconds: 30,
		KillSelection: "YOUNGEST_FIRST",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := make(chan framework.Input)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, in, &framework.Recorder{}) }()
	send := func(in1 framework.Input) {
		select {
		case in <- in1:
		case <-ctx.Done():
			t.Fatalf("scheduler stopped taking events")
		}
	}
	sync := func() {
		if err := s.Sync(ctx); err != nil {
			t.Fatalf("scheduler sync: %v", err)
		}
	}
	// An empty input is taken only once Run is looping: after it, Sync
	// cannot meet ErrNotRunning.
	send(framework.Input{})
	for _, ev := range evs {
		send(framework.Input{Event: ev})
		sync()
	}
	clk.Step(time.Minute) // timers: backoff, reconciliation, offer expiry
	sync()
	close(in)
	<-done
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.panics) > 0 {
		t.Fatalf("the scheduler panicked on a master's events:\n%s", hook.panics[0])
	}
}

// TestWriteMasterStreamSeeds writes the generated seeds of
// FuzzMasterStream; it runs only with FLOTILLA_WRITE_SEEDS=1.
func TestWriteMasterStreamSeeds(t *testing.T) {
	if os.Getenv("FLOTILLA_WRITE_SEEDS") != "1" {
		t.Skip("set FLOTILLA_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzMasterStream")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzMasterStream")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, evs := range seedStreams() {
		for _, useJSON := range []bool{false, true} {
			var buf bytes.Buffer
			for _, ev := range evs {
				var b []byte
				var err error
				if useJSON {
					b, err = ev.MarshalJSON()
				} else {
					b, err = proto.Marshal(ev)
				}
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&buf, "%d\n", len(b))
				buf.Write(b)
			}
			file := name + "-proto"
			if useJSON {
				file = name + "-json"
			}
			writeSeed(t, filepath.Join(dir, file), buf.Bytes(), useJSON)
		}
	}
	for name, raw := range map[string]string{
		"len-2pow63":        "9223372036854775808\n{}",
		"len-maxuint64":     "18446744073709551615\nx",
		"len-over-cap":      "4194305\nx",
		"len-21-digits":     "000000000000000000001\nx",
		"len-spaces":        " 2 \n{}\t3\n{} ",
		"len-zero-frames":   "0\n0\n0\n2\n{}",
		"len-not-a-number":  "-1\nx",
		"len-hex":           "0x10\n0123456789abcdef",
		"truncated-frame":   "100\n{\"type\":\"HEARTBEAT\"}",
		"json-not-an-event": "4\nnull5\n[1,2]",
	} {
		writeSeed(t, filepath.Join(dir, name), []byte(raw), true)
	}
}

func writeSeed(t *testing.T, path string, stream []byte, useJSON bool) {
	t.Helper()
	s := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\n", stream, useJSON)
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// seedStreams are event sequences a master sends, some pushed to extremes.
func seedStreams() map[string][]*scheduler.Event {
	sub := func(hb float64) *scheduler.Event {
		return &scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{
			FrameworkID: &mesos.FrameworkID{Value: "M1-0000"}, HeartbeatIntervalSeconds: proto.Float64(hb)}}
	}
	offer := func(o mesos.Offer) *scheduler.Event {
		return &scheduler.Event{Type: scheduler.Event_OFFERS, Offers: &scheduler.Event_Offers{Offers: []mesos.Offer{o}}}
	}
	update := func(id string, st mesos.TaskState, uuid []byte) *scheduler.Event {
		s := framework.TestStatus(id, "M1-S1", st, true)
		s.UUID = uuid
		return &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: s}}
	}
	normal := framework.TestOffer("M1-O1", "M1-S1", "h1", 4, 4096, 31000, 32000, map[string]string{"rack": "r1"})
	wide := framework.TestOffer("M1-O2", "M1-S2", "h2", 1e308, 1e308, 1, 1<<63, nil)
	negative := framework.TestOffer("M1-O3", "M1-S3", "h3", -4, -1, 32000, 31000, nil)
	return map[string][]*scheduler.Event{
		"subscribe-offer-update": {sub(15), offer(normal), update("web.1", mesos.TASK_RUNNING, make([]byte, 16)),
			{Type: scheduler.Event_HEARTBEAT}, update("web.1", mesos.TASK_FAILED, nil)},
		"heartbeat-tiny":  {sub(1e-9)},
		"heartbeat-huge":  {sub(1e308)},
		"offer-wide":      {sub(15), offer(wide)},
		"offer-negative":  {sub(15), offer(negative)},
		"offer-no-subscr": {offer(normal)},
		"rescind-failure-error": {sub(15), offer(normal),
			{Type: scheduler.Event_RESCIND, Rescind: &scheduler.Event_Rescind{OfferID: mesos.OfferID{Value: "M1-O1"}}},
			{Type: scheduler.Event_FAILURE, Failure: &scheduler.Event_Failure{AgentID: &mesos.AgentID{Value: "M1-S1"}}},
			{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: "Framework failed over"}}},
		"update-unknown-task": {sub(15), update("nope.instance-x._app.1", mesos.TASK_RUNNING, []byte("short uuid"))},
		"empty-events":        {{}, {Type: scheduler.Event_OFFERS}, {Type: scheduler.Event_UPDATE}, {Type: scheduler.Event_SUBSCRIBED}},
	}
}
