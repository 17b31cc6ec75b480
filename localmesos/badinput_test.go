package localmesos

import (
	"io"
	"math/rand"
	"net/http"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// TestRandomBodies throws seeded random and mutated bodies at the
// scheduler endpoint in both encodings: every answer is a Mesos status
// code, never a 500, a hang or a crash.
func TestRandomBodies(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{Agents: 1})
	s := rawSubscribe(t, m, subscribeJSON)
	_, ev := s.next(t)
	fw := ev.Subscribed.FrameworkID.Value
	valid, _ := (&scheduler.Call{FrameworkID: &mesos.FrameworkID{Value: fw}, Type: scheduler.Call_ACCEPT,
		Accept: &scheduler.Call_Accept{OfferIDs: []mesos.OfferID{{Value: "x"}}, Operations: []mesos.Offer_Operation{{
			Type: mesos.Offer_Operation_LAUNCH, Launch: &mesos.Offer_Operation_Launch{TaskInfos: []mesos.TaskInfo{{Name: "t", TaskID: mesos.TaskID{Value: "t"}}}}}}}}).Marshal()
	validJSON := `{"framework_id":{"value":"` + fw + `"},"type":"ACCEPT","accept":{"offer_ids":[{"value":"x"}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"t","task_id":{"value":"t"},"agent_id":{"value":"a"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1}}]}]}}]}}`
	rnd := rand.New(rand.NewSource(7))
	mutate := func(b []byte) []byte {
		c := append([]byte(nil), b...)
		for i := 0; i < 1+rnd.Intn(4); i++ {
			switch rnd.Intn(3) {
			case 0:
				c[rnd.Intn(len(c))] = byte(rnd.Intn(256))
			case 1:
				c = c[:rnd.Intn(len(c))+1]
			case 2:
				i := rnd.Intn(len(c))
				c = append(c[:i], append([]byte{byte(rnd.Intn(256))}, c[i:]...)...)
			}
		}
		return c
	}
	allowed := map[int]bool{200: true, 202: true, 400: true, 403: true, 406: true, 501: true}
	for i := 0; i < 300; i++ {
		ct, body := "application/x-protobuf", mutate(valid)
		if i%2 == 1 {
			ct, body = "application/json", mutate([]byte(validJSON))
		}
		resp := post(t, m.SchedulerURL(), string(body), map[string]string{"Content-Type": ct, "Mesos-Stream-Id": s.id})
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !allowed[resp.StatusCode] {
			t.Fatalf("body %q (%s) answered %d %s", body, ct, resp.StatusCode, out)
		}
	}
	resp, err := http.Get(m.URL() + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("master unhealthy after random input: %v", err)
	}
	resp.Body.Close()
	if strings.Contains(getBody(t, m.URL()+"/master/state"), `"frameworks":[]`) {
		t.Fatal("the framework vanished")
	}
}
