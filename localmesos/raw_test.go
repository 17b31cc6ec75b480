package localmesos

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/framing"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

// rawStream is a SUBSCRIBE response read frame by frame with mesos-go's
// RecordIO reader (the 4 MiB cap included).
type rawStream struct {
	resp *http.Response
	r    framing.Reader
	id   string
}

const subscribeJSON = `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"raw"}}}`

func post(t testing.TB, url, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return resp
}

func rawSubscribe(t testing.TB, m *Master, body string) *rawStream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, m.SchedulerURL(), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("subscribe answered %s: %s", resp.Status, b)
	}
	return &rawStream{resp: resp, r: recordio.NewReader(resp.Body), id: resp.Header.Get("Mesos-Stream-Id")}
}

// next reads one frame (the raw JSON) and decodes it with mesos-go.
func (s *rawStream) next(t testing.TB) ([]byte, *scheduler.Event) {
	t.Helper()
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		b, err := s.r.ReadFrame()
		ch <- res{append([]byte(nil), b...), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("read frame: %v", r.err)
		}
		var ev scheduler.Event
		if err := json.Unmarshal(r.b, &ev); err != nil {
			t.Fatalf("mesos-go cannot decode %s: %v", r.b, err)
		}
		return r.b, &ev
	case <-time.After(10 * time.Second):
		t.Fatalf("no frame within 10s")
		return nil, nil
	}
}

func (s *rawStream) nextType(t testing.TB, ty scheduler.Event_Type) ([]byte, *scheduler.Event) {
	t.Helper()
	for i := 0; i < 100; i++ {
		b, ev := s.next(t)
		if ev.Type == ty {
			return b, ev
		}
	}
	t.Fatalf("no %s event in 100 frames", ty)
	return nil, nil
}

// call posts a JSON call on the stream's framework and returns status and body.
func (s *rawStream) call(t testing.TB, m *Master, body string) (int, string) {
	t.Helper()
	resp := post(t, m.SchedulerURL(), body, map[string]string{"Content-Type": "application/json", "Mesos-Stream-Id": s.id})
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSubscribeStreamFormat(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, accept, messageAccept, wantCT, wantMCT string
		proto                                        bool
	}{
		{name: "json", accept: "application/json", wantCT: "application/json"},
		{name: "protobuf", accept: "application/x-protobuf", wantCT: "application/x-protobuf", proto: true},
		{name: "no accept header means json", wantCT: "application/json"},
		{name: "recordio with message accept", accept: "application/recordio", messageAccept: "application/json", wantCT: "application/recordio", wantMCT: "application/json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fc := clock.NewFake(time.Unix(1700000000, 0))
			m, _ := startMaster(t, Config{Clock: fc, Heartbeat: 7 * time.Second})
			req, _ := http.NewRequest(http.MethodPost, m.SchedulerURL(), strings.NewReader(subscribeJSON))
			req.Header.Set("Content-Type", "application/json")
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			if tc.messageAccept != "" {
				req.Header.Set("Message-Accept", tc.messageAccept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.wantCT {
				t.Fatalf("Content-Type %q, want exactly %q", got, tc.wantCT)
			}
			if got := resp.Header.Get("Message-Content-Type"); got != tc.wantMCT {
				t.Fatalf("Message-Content-Type %q, want %q", got, tc.wantMCT)
			}
			if resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "" {
				t.Fatalf("stream has a Content-Length (%d); mesos-go needs it absent", resp.ContentLength)
			}
			if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
				t.Fatalf("Transfer-Encoding %v, want chunked", resp.TransferEncoding)
			}
			if id := resp.Header.Get("Mesos-Stream-Id"); len(id) != 36 {
				t.Fatalf("Mesos-Stream-Id %q is not a uuid", id)
			}
			r := recordio.NewReader(resp.Body)
			decode := func() *scheduler.Event {
				b, err := r.ReadFrame()
				if err != nil {
					t.Fatalf("read frame: %v", err)
				}
				var ev scheduler.Event
				if tc.proto {
					err = ev.Unmarshal(b)
				} else {
					err = json.Unmarshal(b, &ev)
				}
				if err != nil {
					t.Fatalf("decode frame %q: %v", b, err)
				}
				return &ev
			}
			ev := decode()
			if ev.Type != scheduler.Event_SUBSCRIBED || ev.Subscribed.GetHeartbeatIntervalSeconds() != 7 {
				t.Fatalf("first event %v, want SUBSCRIBED with heartbeat 7", ev)
			}
			// The heartbeat ticker is armed before SUBSCRIBED is written.
			fc.Step(7 * time.Second)
			for i := 0; ev.Type != scheduler.Event_HEARTBEAT; i++ {
				if i > 5 {
					t.Fatalf("no HEARTBEAT after stepping the clock one interval")
				}
				ev = decode()
			}
		})
	}
}

func TestSchedulerStatusCodes(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{MaxBodyBytes: 64 << 10})
	a := rawSubscribe(t, m, subscribeJSON)
	_, ev := a.next(t)
	fwA := ev.Subscribed.FrameworkID.Value

	// B subscribes with a failover timeout, then goes away: known but not
	// subscribed.
	b := rawSubscribe(t, m, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"b","failover_timeout":3600}}}`)
	_, ev = b.next(t)
	fwB := ev.Subscribed.FrameworkID.Value
	b.resp.Body.Close()
	waitFor(t, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.frameworks[fwB] != nil && m.frameworks[fwB].stream == nil
	})

	call := func(fw, body string) string {
		return `{"framework_id":{"value":"` + fw + `"},` + body + `}`
	}
	decline := `"type":"DECLINE","decline":{"offer_ids":[{"value":"nope"}]}`
	protoDecline, _ := (&scheduler.Call{FrameworkID: &mesos.FrameworkID{Value: fwA}, Type: scheduler.Call_DECLINE,
		Decline: &scheduler.Call_Decline{OfferIDs: []mesos.OfferID{{Value: "x"}}}}).Marshal()
	protoUnknown, _ := (&scheduler.Call{FrameworkID: &mesos.FrameworkID{Value: fwA}, Type: scheduler.Call_Type(99)}).Marshal()
	json := map[string]string{"Content-Type": "application/json"}
	withStream := func(id string) map[string]string {
		return map[string]string{"Content-Type": "application/json", "Mesos-Stream-Id": id}
	}
	cases := []struct {
		name     string
		method   string
		body     string
		hdr      map[string]string
		want     int
		wantBody string
	}{
		{"GET is 405", http.MethodGet, "", nil, 405, "POST"},
		{"no content type is 400", "", call(fwA, decline), map[string]string{"Mesos-Stream-Id": a.id}, 400, "Content-Type"},
		{"text/plain is 415", "", call(fwA, decline), map[string]string{"Content-Type": "text/plain", "Mesos-Stream-Id": a.id}, 415, ""},
		{"malformed json is 400", "", `{"type":`, withStream(a.id), 400, "Failed to parse"},
		{"json of the wrong shape is 400", "", `[1,2,3]`, withStream(a.id), 400, "Failed to parse"},
		{"unknown enum name is 400", "", call(fwA, `"type":"FROBNICATE"`), withStream(a.id), 400, "Failed to parse"},
		{"empty body is 400", "", "", withStream(a.id), 400, "Failed to parse"},
		{"malformed protobuf is 400", "", "\xff\xff\xff\xff", map[string]string{"Content-Type": "application/x-protobuf", "Mesos-Stream-Id": a.id}, 400, "Failed to parse"},
		{"oversized body is 400", "", call(fwA, `"type":"DECLINE","decline":{"offer_ids":[{"value":"`+strings.Repeat("x", 70<<10)+`"}]}`), withStream(a.id), 400, "exceeds"},
		{"UNKNOWN call is 501", "", call(fwA, `"type":"UNKNOWN"`), withStream(a.id), 501, "unknown call"},
		{"unknown numeric call type is 501", "", string(protoUnknown), map[string]string{"Content-Type": "application/x-protobuf", "Mesos-Stream-Id": a.id}, 501, ""},
		{"missing body for the type is 400", "", call(fwA, `"type":"DECLINE"`), withStream(a.id), 400, "'decline'"},
		{"no framework id is 400", "", `{` + decline + `}`, withStream(a.id), 400, "framework_id"},
		{"unknown framework is 400", "", call("nope-0000", decline), withStream(a.id), 400, "Framework cannot be found"},
		{"known but not subscribed is 403", "", call(fwB, decline), withStream(b.id), 403, "not subscribed"},
		{"missing stream id is 400", "", call(fwA, decline), json, 400, "Mesos-Stream-Id"},
		{"wrong stream id is 400", "", call(fwA, decline), withStream("00000000-0000-4000-8000-000000000000"), 400, "didn't match"},
		{"subscribe with a stream id is 400", "", subscribeJSON, map[string]string{"Content-Type": "application/json", "Accept": "application/json", "Mesos-Stream-Id": a.id}, 400, "Mesos-Stream-Id"},
		{"subscribe with unacceptable Accept is 406", "", subscribeJSON, map[string]string{"Content-Type": "application/json", "Accept": "text/html"}, 406, ""},
		{"subscribe without framework_info is 400", "", `{"type":"SUBSCRIBE","subscribe":{}}`, map[string]string{"Content-Type": "application/json"}, 400, "framework_info"},
		{"ack with a short uuid is 400", "", call(fwA, `"type":"ACKNOWLEDGE","acknowledge":{"agent_id":{"value":"a"},"task_id":{"value":"t"},"uuid":"AAE="}`), withStream(a.id), 400, "UUID"},
		{"valid decline is 202 with empty body", "", call(fwA, decline), withStream(a.id), 202, ""},
		{"null repeated fields (as mesos-go sends them) are accepted", "", call(fwA, `"type":"DECLINE","decline":{"offer_ids":null,"filters":null}`), withStream(a.id), 202, ""},
		{"valid protobuf decline is 202", "", string(protoDecline), map[string]string{"Content-Type": "application/x-protobuf", "Mesos-Stream-Id": a.id}, 202, ""},
		{"MESSAGE is accepted", "", call(fwA, `"type":"MESSAGE","message":{"agent_id":{"value":"a"},"executor_id":{"value":"e"},"data":"aGk="}`), withStream(a.id), 202, ""},
		{"REQUEST is accepted", "", call(fwA, `"type":"REQUEST","request":{"requests":[]}`), withStream(a.id), 202, ""},
		{"ACCEPT_INVERSE_OFFERS is accepted", "", call(fwA, `"type":"ACCEPT_INVERSE_OFFERS","accept_inverse_offers":{"inverse_offer_ids":[{"value":"x"}]}`), withStream(a.id), 202, ""},
		{"DECLINE_INVERSE_OFFERS is accepted", "", call(fwA, `"type":"DECLINE_INVERSE_OFFERS","decline_inverse_offers":{"inverse_offer_ids":[{"value":"x"}]}`), withStream(a.id), 202, ""},
		{"ACKNOWLEDGE_OPERATION_STATUS is accepted", "", call(fwA, `"type":"ACKNOWLEDGE_OPERATION_STATUS","acknowledge_operation_status":{"uuid":"AAAAAAAAAAAAAAAAAAAAAA==","operation_id":{"value":"op"}}`), withStream(a.id), 202, ""},
		{"update framework is 200", "", call(fwA, `"type":"UPDATE_FRAMEWORK","update_framework":{"framework_info":{"user":"root","name":"renamed","id":{"value":"`+fwA+`"}}}`), withStream(a.id), 200, ""},
		{"update framework with another id is 400", "", call(fwA, `"type":"UPDATE_FRAMEWORK","update_framework":{"framework_info":{"user":"root","name":"x","id":{"value":"other"}}}`), withStream(a.id), 400, "differs"},
		{"update framework with roles but no MULTI_ROLE is 400", "", call(fwA, `"type":"UPDATE_FRAMEWORK","update_framework":{"framework_info":{"user":"root","name":"x","id":{"value":"`+fwA+`"},"roles":["web"]}}`), withStream(a.id), 400, "must not be set when the framework is not MULTI_ROLE capable"},
		{"update framework with role and MULTI_ROLE is 400", "", call(fwA, `"type":"UPDATE_FRAMEWORK","update_framework":{"framework_info":{"user":"root","name":"x","id":{"value":"`+fwA+`"},"role":"web","capabilities":[{"type":"MULTI_ROLE"}]}}`), withStream(a.id), 400, "must not be set when the framework is MULTI_ROLE capable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			if tc.method == http.MethodGet {
				var err error
				resp, err = http.Get(m.SchedulerURL())
				if err != nil {
					t.Fatal(err)
				}
			} else {
				resp = post(t, m.SchedulerURL(), tc.body, tc.hdr)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.want)
			}
			if tc.want == 202 && len(body) != 0 {
				t.Fatalf("202 with body %q, want empty", body)
			}
			if !strings.Contains(string(body), tc.wantBody) {
				t.Fatalf("body %q does not say %q", body, tc.wantBody)
			}
		})
	}
	// The master is still serving after all of it.
	if code, body := a.call(t, m, call(fwA, decline)); code != 202 {
		t.Fatalf("after bad input the master answers %d %s", code, body)
	}
}

func TestSubscriptionRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body, want string
	}{
		{"invalid role", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x","roles":["a/b"],"capabilities":[{"type":"MULTI_ROLE"}]}}}`, "invalid role"},
		{"negative failover timeout", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x","failover_timeout":-1}}}`, "failover_timeout"},
		// Mesos's framework::internal::validateRoles: each role field
		// belongs to one kind of framework.
		{"role with MULTI_ROLE", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x","role":"web","capabilities":[{"type":"MULTI_ROLE"}]}}}`,
			"'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"},
		{"roles without MULTI_ROLE", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x","roles":["web"]}}}`,
			"'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"},
		{"duplicate role", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x","roles":["web","web"],"capabilities":[{"type":"MULTI_ROLE"}]}}}`,
			"duplicate role 'web'"},
		{"invalid role without MULTI_ROLE", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x","role":"-web"}}}`, "invalid role"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, _ := startMaster(t, Config{})
			s := rawSubscribe(t, m, tc.body)
			_, ev := s.next(t)
			if ev.Type != scheduler.Event_ERROR || !strings.Contains(ev.Error.Message, tc.want) {
				t.Fatalf("got %v, want one ERROR saying %q", ev, tc.want)
			}
			if _, err := s.r.ReadFrame(); err != io.EOF {
				t.Fatalf("stream not closed after ERROR: %v", err)
			}
		})
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
