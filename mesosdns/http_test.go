package mesosdns

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHTTPAPI(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testConfig())
	tasks, leader, masters := fixture()
	if err := s.Update(tasks, leader, masters); err != nil {
		t.Fatal(err)
	}
	h := s.HTTPHandler()
	for _, tc := range []struct {
		name   string
		path   string
		status int
		want   string // JSON, compared after decoding
	}{
		{name: "host", path: "/v1/hosts/web-e844k.flotilla.mesos", status: 200,
			want: `[{"host":"web-e844k.flotilla.mesos.","ip":"127.0.0.1"}]`},
		{name: "host v6", path: "/v1/hosts/v6.flotilla.mesos.", status: 200,
			want: `[{"host":"v6.flotilla.mesos.","ip":"fd00::6"}]`},
		{name: "unknown host gives one empty record", path: "/v1/hosts/nope.flotilla.mesos", status: 200,
			want: `[{"host":"","ip":""}]`},
		{name: "unpublished host is absent", path: "/v1/hosts/hidden.flotilla.mesos", status: 200,
			want: `[{"host":"","ip":""}]`},
		{name: "service", path: "/v1/services/_web._udp.flotilla.mesos", status: 200,
			want: `[{"service":"_web._udp.flotilla.mesos","host":"web-e844k.flotilla.slave.mesos.","ip":"127.0.0.1","port":"31001"}]`},
		{name: "service with two instances", path: "/v1/services/_web._tcp.flotilla.mesos.", status: 200,
			want: `[{"service":"_web._tcp.flotilla.mesos.","host":"web-e844k.flotilla.slave.mesos.","ip":"127.0.0.1","port":"31000"},` +
				`{"service":"_web._tcp.flotilla.mesos.","host":"web-izm16.flotilla.slave.mesos.","ip":"127.0.0.2","port":"31002"}]`},
		{name: "unknown service", path: "/v1/services/_nope._tcp.flotilla.mesos", status: 200,
			want: `[{"service":"","host":"","ip":"","port":""}]`},
		{name: "version", path: "/v1/version", status: 200,
			want: `{"Service":"Flotilla (Mesos-DNS compatible)","URL":"https://github.com/flotilla-sched/flotilla","Version":"dev"}`},
		{name: "ports not implemented, as in Mesos-DNS", path: "/v1/hosts/x/ports", status: 501},
		{name: "unknown path", path: "/v1/axfr", status: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.want == "" {
				return
			}
			body, _ := io.ReadAll(rec.Body)
			var got, want any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(want)
			if string(gb) != string(wb) {
				t.Errorf("body\n got  %s\n want %s", gb, wb)
			}
		})
	}
}

func TestHTTPConfig(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testConfig())
	rec := httptest.NewRecorder()
	s.HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/config", nil))
	var cfg map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &cfg); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  string
		want any
	}{
		{"domain", "Domain", "mesos"},
		{"ttl", "TTL", float64(60)},
		{"soa mname", "SOAMname", "ns1.mesos."},
		{"resolvers", "Resolvers", []any{"127.0.0.1:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gb, _ := json.Marshal(cfg[tc.key])
			wb, _ := json.Marshal(tc.want)
			if string(gb) != string(wb) {
				t.Errorf("%s = %s, want %s", tc.key, gb, wb)
			}
		})
	}
}
