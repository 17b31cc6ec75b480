package api

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// TestTaskListFormats: /v2/tasks filters by Marathon's status and
// status[] parameters, and answers Accept: text/plain with Marathon's
// plain task list; /metrics/prometheus serves the metrics.
func TestTaskListFormats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", simpleApp, 201)
	ids := e.offer()
	e.update(ids[0], mesos.TASK_RUNNING, nil)
	e.sync()
	count := func(q string) int {
		return len(e.mustDo("GET", "/v2/tasks"+q, "", 200).json(t)["tasks"].([]any))
	}
	if a, b, c := count("?status=running"), count("?status[]=staging"), count("?status[]=running&status[]=staging"); a != 1 || b != 1 || c != 2 {
		t.Fatalf("running %d, staging %d, both %d; want 1, 1, 2", a, b, c)
	}
	r := e.do("GET", "/v2/tasks", "", "Accept", "text/plain")
	svc := e.app("/prod/shop/web")["portDefinitions"].([]any)[0].(map[string]any)["port"].(float64)
	line := strings.TrimSpace(string(r.body))
	fields := strings.Split(line, "\t")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") || len(fields) != 3 ||
		fields[0] != "prod_shop_web" || fields[1] != strconv.Itoa(int(svc)) || !strings.Contains(fields[2], ":") {
		t.Fatalf("plain list %d %q: %q", r.status, r.header.Get("Content-Type"), line)
	}
	if r := e.do("GET", "/metrics/prometheus", ""); r.status != 200 || !strings.Contains(string(r.body), "flotilla_api_requests_total") {
		t.Fatalf("/metrics/prometheus: %d", r.status)
	}
}
