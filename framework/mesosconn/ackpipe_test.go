package mesosconn

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/localmesos"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

// Against localmesos, with both codecs: every update of 400 tasks is
// acknowledged (pipelined, since the Driver has an ackPipe), none is left
// pending and none had to be re-sent by an agent.
func TestAcksPipelinedToLocalmesos(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"json", "protobuf"} {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			m := coreStartMaster(t, localmesos.Config{
				AgentSpecs: []localmesos.AgentSpec{{Hostname: "127.0.0.1"}, {Hostname: "127.0.0.2"}},
				NoSandbox:  true, NoAgentHTTP: true, SamePorts: true,
				Executor: func(string) (executor.Executor, error) { return executor.NewSimulated(clock.Real{}), nil },
			})
			s, _ := startFlotillaCodec(t, m, codec)
			s.PutApp(appspec.App{ID: "/ack/web", Version: "v1", Instances: 400, CPUs: 0.001, Mem: 1, Cmd: "sleep 1000"})
			e := &e2e{t: t, m: m, s: s}
			e.waitFor("400 running", 30*time.Second, func(snap *framework.Snapshot) bool {
				n := 0
				for _, tk := range snap.TasksOf("/ack/web") {
					if tk.State == mesos.TASK_RUNNING {
						n++
					}
				}
				return n == 400
			})
			// localmesos re-sends an unacknowledged update after 10 s; all
			// should be acknowledged long before.
			deadline := time.Now().Add(5 * time.Second)
			for {
				pending, resent := m.UnacknowledgedUpdates()
				if resent != 0 {
					t.Fatalf("%d updates were re-sent for want of an acknowledgement", resent)
				}
				if pending == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d updates still unacknowledged after 5 s", pending)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func startFlotillaCodec(t *testing.T, m *localmesos.Master, codec string) (*framework.Scheduler, func()) {
	t.Helper()
	det, err := NewDetector(DetectorConfig{Master: m.SchedulerURL()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := NewConn(ConnConfig{Detector: det, FrameworkIDs: &e2eIDs{}, Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	return runFlotilla(t, conn, det, nil)
}

// pipePeer is a raw HTTP/1.1 peer for ackPipe: it answers each request
// with 202 (or 400 for task "bad"), records the acknowledged task ids,
// and closes a connection after `closeAfter` requests, as a master's idle
// timeout would, without telling the client.
type pipePeer struct {
	ln         net.Listener
	closeAfter int

	mu     sync.Mutex
	tasks  []string
	conns  int
	closed int // connections this peer has closed
}

func newPipePeer(t *testing.T, closeAfter int) *pipePeer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pipePeer{ln: ln, closeAfter: closeAfter}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns++
			p.mu.Unlock()
			go p.serve(t, c)
		}
	}()
	return p
}

func (p *pipePeer) serve(t *testing.T, c net.Conn) {
	defer func() {
		c.Close()
		p.mu.Lock()
		p.closed++
		p.mu.Unlock()
	}()
	br := bufio.NewReader(c)
	for n := 0; p.closeAfter == 0 || n < p.closeAfter; n++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		var call scheduler.Call
		status := "202 Accepted"
		if err := json.Unmarshal(body, &call); err != nil ||
			call.GetType() != scheduler.Call_ACKNOWLEDGE || req.Header.Get("Mesos-Stream-Id") != "stream-9" ||
			call.GetFrameworkID().GetValue() != "F1" {
			t.Errorf("peer got a bad call (%v): %s", err, body)
			status = "400 Bad Request"
		} else if id := call.GetAcknowledge().GetTaskID().Value; id == "bad" {
			status = "400 Bad Request"
		} else {
			p.mu.Lock()
			p.tasks = append(p.tasks, id)
			p.mu.Unlock()
		}
		fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Length: 4\r\n\r\nnope", status)
	}
}

func acksFor(ids ...string) []framework.Ack {
	out := make([]framework.Ack, len(ids))
	for i, id := range ids {
		out[i] = framework.Ack{AgentID: "S1", TaskID: id, UUID: []byte("0123456789abcdef")}
	}
	return out
}

// A batch sent on a kept-alive connection the peer has closed meanwhile
// is sent again on a fresh one; a refused acknowledgement fails alone.
func TestAckPipeStaleConnectionAndRefusals(t *testing.T) {
	t.Parallel()
	peer := newPipePeer(t, 3) // the first connection answers 3, then closes
	p := newAckPipe("http://"+peer.ln.Addr().String()+"/api/v1/scheduler", codecs.ByMediaType[codecs.MediaTypeJSON], "stream-9", 5*time.Second)
	if p == nil {
		t.Fatal("no pipe for a plain http master")
	}
	defer p.close()
	ctx := context.Background()
	errs := p.send(ctx, "F1", acksFor("a", "bad", "c"))
	if errs[0] != nil || errs[2] != nil || errs[1] == nil {
		t.Fatalf("errors %v: want only the second (refused) to fail", errs)
	}
	// The connection went back to the pool, and the peer has closed it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		peer.mu.Lock()
		closed := peer.closed
		peer.mu.Unlock()
		if closed == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the peer closed %d connections after 10 s, want 1", closed)
		}
		time.Sleep(time.Millisecond)
	}
	errs = p.send(ctx, "F1", acksFor("d", "e"))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("ack %d after the peer closed the idle connection: %v", i, err)
		}
	}
	peer.mu.Lock()
	defer peer.mu.Unlock()
	if got := fmt.Sprint(peer.tasks); got != "[a c d e]" {
		t.Fatalf("peer acknowledged %s, want [a c d e]", got)
	}
	if peer.conns != 2 {
		t.Fatalf("%d connections, want 2 (one pipelined batch each)", peer.conns)
	}
}

// A pipe is made only for a plain http master with a stream id; otherwise
// the Driver acknowledges through mesos-go.
func TestAckPipeOnlyForPlainHTTP(t *testing.T) {
	t.Parallel()
	js := codecs.ByMediaType[codecs.MediaTypeJSON]
	if newAckPipe("https://m:5050/api/v1/scheduler", js, "s", time.Second) != nil {
		t.Error("pipe for https")
	}
	if newAckPipe("http://m:5050/api/v1/scheduler", js, "", time.Second) != nil {
		t.Error("pipe without a stream id")
	}
	if p := newAckPipe("http://m/api/v1/scheduler", js, "s", time.Second); p == nil || p.addr != "m:80" {
		t.Errorf("pipe for http://m: %+v", p)
	}
}

// acceptedSamples are answers to an ACKNOWLEDGE: what localmesos's net/http
// server and a real Mesos master send, and the variants readAccepted must
// either read exactly as net/http does or leave to it.
var acceptedSamples = []string{
	"HTTP/1.1 202 Accepted\r\nDate: Mon, 07 Dec 2026 16:00:00 GMT\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	"HTTP/1.1 202 Accepted\r\ncontent-length:0\r\nconnection: Keep-Alive, CLOSE\r\n\r\n",
	"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
	"HTTP/1.1 202 \r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 202 Accepted\r\n\r\n",                                           // no length: the body runs to the close
	"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok",                    // a body
	"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", // twice
	"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n X-Folded: yes\r\n\r\n",
	"HTTP/1.1 202 Accepted\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 202 Accepted\r\nX: a\x01b\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n", // header not whole
	"HTTP/1.0 202 Accepted\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nbad request",
	"HTTP/1.1 2020 Accepted\r\nContent-Length: 0\r\n\r\n",
	"garbage\r\n\r\n",
	"",
}

// checkReadAccepted fails t unless readAccepted, on in followed by a plain
// answer, reads exactly what net/http's ReadResponse reads, with the same
// meaning (a 202, no body, the same Close), or reads nothing.
func checkReadAccepted(t *testing.T, in []byte) {
	const next = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
	in = append(in[:len(in):len(in)], next...)
	br := bufio.NewReader(bytes.NewReader(in))
	closes, ok := readAccepted(br)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		if !bytes.Equal(rest, in) {
			t.Fatalf("%q: declined but consumed %d bytes", in, len(in)-len(rest))
		}
		return
	}
	ref := bufio.NewReader(bytes.NewReader(in))
	resp, err := http.ReadResponse(ref, nil)
	if err != nil {
		t.Fatalf("%q: taken as a 202 but net/http fails it: %v", in, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || len(body) != 0 || resp.StatusCode != http.StatusAccepted || resp.Close != closes {
		t.Fatalf("%q: taken as a 202 with no body, close=%v; net/http: %d, body %q (%v), close=%v",
			in, closes, resp.StatusCode, body, err, resp.Close)
	}
	refRest, err := io.ReadAll(ref)
	if err != nil || !bytes.Equal(rest, refRest) {
		t.Fatalf("%q: left %q, net/http left %q (%v)", in, rest, refRest, err)
	}
}

func TestReadAcceptedAgreesWithNetHTTP(t *testing.T) {
	took := 0
	for _, s := range acceptedSamples {
		checkReadAccepted(t, []byte(s))
		if _, ok := readAccepted(bufio.NewReader(strings.NewReader(s))); ok {
			took++
		}
	}
	// The first five are the plain answers: a fast path that declines
	// everything would pass the check above.
	if took != 5 {
		t.Fatalf("readAccepted took %d of the samples, want the 5 plain ones", took)
	}
}

// FuzzReadAccepted: on any input, readAccepted agrees with net/http or
// leaves the answer to it (checkReadAccepted).
func FuzzReadAccepted(f *testing.F) {
	for _, s := range acceptedSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkReadAccepted(t, in) })
}
