package main

import (
	"encoding/json"
	"net/http"

	"github.com/flotilla-sched/flotilla/discovery"
	"github.com/flotilla-sched/flotilla/gateway"
)

// appRoutes serves GET /v2/apps/{id}/routes for the UI's app page: the
// gateway routes this replica's discovery feed gives the app (read-only:
// the feed's current view, as the gateway itself is fed), so the page
// shows what the gateway does, not what the app asked for. Its DNS
// records are on the Mesos-DNS HTTP API mounted at /v1/.
func (p *platform) appRoutes(w http.ResponseWriter, r *http.Request, appID string) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "only GET is allowed here"}) // the client's loss alone
		return
	}
	if p.feed == nil || p.feed.Current() == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "this replica has no discovery view yet (no DNS or gateway configured, or its first view is being built); retry in a moment"})
		return
	}
	type backend struct {
		TaskID string `json:"taskId"`
		Host   string `json:"host"`
		Port   uint32 `json:"port"`
	}
	out := map[string]any{"appId": appID, "routed": false}
	for _, a := range discovery.Routes(p.feed.Current(), p.cfg.DNSDomain, p.cfg.FrameworkName) {
		if a.ID != appID {
			continue
		}
		bs := make([]backend, 0, len(a.Backends))
		for _, b := range a.Backends {
			bs = append(bs, backend{b.TaskID, b.Host, b.Port})
		}
		listeners := []string{"internal"}
		if a.Exposure.Mode == "external" {
			listeners = append(listeners, "external")
		}
		out = map[string]any{"appId": appID, "routed": true, "dnsName": a.DNSName, "exposure": a.Exposure,
			"listeners": listeners, "backends": bs, "gateway": p.gatewayListeners()}
		break
	}
	_ = json.NewEncoder(w).Encode(out) // the client's loss alone
}

// gatewayListeners are the addresses of this replica's gateway listeners.
func (p *platform) gatewayListeners() map[string]string {
	out := map[string]string{}
	if p.gateway == nil {
		return out
	}
	for name, l := range map[string]gateway.Listener{"internal": gateway.Internal, "external": gateway.External} {
		if a := p.gateway.Addr(l); a != nil {
			out[name] = a.String()
		}
	}
	return out
}
