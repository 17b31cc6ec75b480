package offers

import (
	"encoding/json"
	"reflect"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// offerJSON is an offer as the master sends it in an OFFERS event (the
// shape in MESOS.md), with a second ports entry, a dynamic reservation in
// the refined format, and resources a plain task cannot use (revocable,
// a persistent volume, reservations labelled for a resident instance).
const offerJSON = `{
  "id":{"value":"M1-O7"},"framework_id":{"value":"M1-0000"},"agent_id":{"value":"M1-S1"},
  "hostname":"h1","allocation_info":{"role":"web"},
  "resources":[
    {"name":"cpus","type":"SCALAR","scalar":{"value":4},"role":"*","allocation_info":{"role":"web"}},
    {"name":"mem","type":"SCALAR","scalar":{"value":8192},"allocation_info":{"role":"web"}},
    {"name":"disk","type":"SCALAR","scalar":{"value":10000},"allocation_info":{"role":"web"}},
    {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31500,"end":32000},{"begin":31000,"end":31499}]},"role":"*"},
    {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":20000,"end":20001}]},"role":"*"},
    {"name":"cpus","type":"SCALAR","scalar":{"value":2},"allocation_info":{"role":"web"},
     "reservations":[{"type":"DYNAMIC","role":"web","principal":"ops"}]},
    {"name":"cpus","type":"SCALAR","scalar":{"value":16},"allocation_info":{"role":"web"},
     "reservations":[{"type":"DYNAMIC","role":"web","principal":"flotilla","labels":{"labels":[{"key":"marathon_task_id","value":"web.resident-1"}]}}]},
    {"name":"mem","type":"SCALAR","scalar":{"value":4096},"role":"web","allocation_info":{"role":"web"},
     "reservation":{"principal":"flotilla","labels":{"labels":[{"key":"marathon_task_id","value":"web.resident-1"}]}}},
    {"name":"cpus","type":"SCALAR","scalar":{"value":8},"revocable":{}},
    {"name":"disk","type":"SCALAR","scalar":{"value":500},"disk":{"persistence":{"id":"v1"},"volume":{"container_path":"data","mode":"RW"}},
     "reservations":[{"type":"DYNAMIC","role":"web"}]},
    {"name":"gpus","type":"SCALAR","scalar":{"value":1},"allocation_info":{"role":"web"}}
  ],
  "attributes":[
    {"name":"rack","type":"TEXT","text":{"value":"r1"}},
    {"name":"gen","type":"SCALAR","scalar":{"value":3.5}},
    {"name":"slots","type":"RANGES","ranges":{"range":[{"begin":5,"end":6},{"begin":1,"end":2}]}},
    {"name":"tags","type":"SET","set":{"item":["ssd","gpu"]}}
  ],
  "executor_ids":null
}`

func decodeOffer(t *testing.T) *mesos.Offer {
	t.Helper()
	var o mesos.Offer
	if err := json.Unmarshal([]byte(offerJSON), &o); err != nil {
		t.Fatalf("decode offer: %v", err)
	}
	return &o
}

func TestFromMesos(t *testing.T) {
	t.Parallel()
	got := FromMesos(decodeOffer(t))
	cases := []struct {
		name      string
		got, want any
	}{
		{"ids", []string{got.ID, got.AgentID, got.Hostname}, []string{"M1-O7", "M1-S1", "h1"}},
		{"attributes", got.Attributes, map[string]string{"rack": "r1", "gen": "3.5", "slots": "[1-2,5-6]", "tags": "{gpu,ssd}"}},
		{"roles", len(got.Resources), 2},
		{"unreserved", [6]any{got.Resources[0].Role, got.Resources[0].AllocationRole, got.Resources[0].CPUs, got.Resources[0].Mem, got.Resources[0].Disk, got.Resources[0].GPUs},
			[6]any{"*", "web", 4.0, 8192.0, 10000.0, 1}},
		{"ports sorted and merged", got.Resources[0].Ports, []Range{{20000, 20001}, {31000, 32000}}},
		// Labelled reservations (refined or legacy) belong to a resident
		// instance (Marathon's marathon_task_id): not for plain tasks.
		{"reserved", [4]any{got.Resources[1].Role, got.Resources[1].AllocationRole, got.Resources[1].CPUs, got.Resources[1].Mem}, [4]any{"web", "web", 2.0, 0.0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %#v, want %#v", tc.got, tc.want)
			}
		})
	}
}

// TestFromMesosEchoesReservation checks that a task's resources carry the
// offer's reservation and allocation exactly, so the master accepts them.
func TestFromMesosEchoesReservation(t *testing.T) {
	t.Parallel()
	mo := decodeOffer(t)
	res := Place([]Offer{FromMesos(mo)}, []Request{{ID: "t", App: "a", Role: "web", CPUs: 3, Mem: 128, Ports: 1}}, nil, Options{})
	if len(res.Placements) != 1 {
		t.Fatalf("not placed: %+v", res.Unplaced)
	}
	var reserved, unreserved *mesos.Resource
	for i, r := range res.Placements[0].Resources {
		if r.Name != "cpus" {
			continue
		}
		if len(r.Reservations) > 0 {
			reserved = &res.Placements[0].Resources[i]
		} else {
			unreserved = &res.Placements[0].Resources[i]
		}
	}
	if reserved == nil || unreserved == nil {
		t.Fatalf("want cpus from both the reservation and unreserved, got %+v", res.Placements[0].Resources)
	}
	if !reflect.DeepEqual(reserved.Reservations, mo.Resources[5].Reservations) || reserved.Scalar.Value != 2 || reserved.Role != nil {
		t.Errorf("reserved cpus %+v, want the offer's reservations and 2", reserved)
	}
	if *unreserved.Role != "*" || unreserved.Scalar.Value != 1 || *unreserved.AllocationInfo.Role != "web" {
		t.Errorf("unreserved cpus %+v", unreserved)
	}
	b, err := json.Marshal(res.Placements[0].Resources)
	if err != nil {
		t.Fatalf("resources do not encode: %v", err)
	}
	var back []mesos.Resource
	if err := json.Unmarshal(b, &back); err != nil || len(back) != len(res.Placements[0].Resources) {
		t.Fatalf("resources do not round-trip: %v", err)
	}
}
