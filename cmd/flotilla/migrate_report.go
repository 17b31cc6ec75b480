package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/flotilla-sched/flotilla/appspec"
)

// statusFields are Marathon's read-only fields of a GET answer: Flotilla
// ignores them on input.
var statusFields = []string{"version", "versionInfo", "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy",
	"deployments", "tasks", "lastTaskFailure", "readinessCheckResults", "taskStats", "counts"}

// report prints what becomes of one app of the export.
func (m *migrateCLI) report(a *exportApp, refused []string, skipped, exists bool) {
	fate := "new"
	switch {
	case skipped:
		fate = "left out (refused)"
	case len(refused) > 0:
		fate = "refused"
	case exists:
		fate = "replaces the app of this id in Flotilla"
	}
	fmt.Fprintf(m.out, "\n%s: %s\n", a.id, fate)
	// The app as Flotilla reads it, when it does: service ports and
	// health checks after its normalisation.
	var app *appspec.App
	if b, err := json.Marshal(a.raw); err == nil {
		if d, err := appspec.Decode(bytes.NewReader(b)); err == nil {
			app = d
		}
	}
	if line := servicePortsLine(a.raw, app); line != "" {
		fmt.Fprintf(m.out, "  service ports: %s\n", line)
	}
	for i, hc := range healthLines(a.raw) {
		fmt.Fprintf(m.out, "  health check %d: %s\n", i, hc)
	}
	if d := deprecatedLines(a.raw, app); len(d) > 0 {
		fmt.Fprintf(m.out, "  deprecated, translated: %s\n", strings.Join(d, "; "))
	}
	if n := noEffectLines(a.raw); len(n) > 0 {
		fmt.Fprintf(m.out, "  accepted, no effect here: %s\n", strings.Join(n, "; "))
	}
	var status []string
	for _, f := range statusFields {
		if _, ok := a.raw[f]; ok {
			status = append(status, f)
		}
	}
	if len(status) > 0 {
		fmt.Fprintf(m.out, "  ignored (status of the export): %s\n", strings.Join(status, ", "))
	}
	for _, r := range refused {
		fmt.Fprintf(m.out, "  refused: %s\n", r)
	}
}

// servicePortsLine says, port by port, whether the service port is kept
// (a fixed one) or assigned by Flotilla (0 in the export).
func servicePortsLine(raw map[string]any, app *appspec.App) string {
	var ports []uint32
	var mappings []appspec.PortMapping
	if app != nil && app.Container != nil {
		mappings = app.Container.PortMappings
	}
	switch {
	case len(mappings) > 0:
		for _, pm := range mappings {
			ports = append(ports, pm.ServicePort)
		}
	case app != nil:
		for _, pd := range app.PortDefinitions {
			ports = append(ports, pd.Port)
		}
	default:
		ports = rawServicePorts(raw)
	}
	var parts []string
	for i, p := range ports {
		if p == 0 {
			parts = append(parts, fmt.Sprintf("#%d assigned by Flotilla (from --local-port-min/max, 10000-20000)", i))
		} else {
			parts = append(parts, fmt.Sprintf("#%d %d kept", i, p))
		}
	}
	return strings.Join(parts, ", ")
}

// rawServicePorts reads the service ports of an app Flotilla refuses, as
// exported.
func rawServicePorts(raw map[string]any) []uint32 {
	num := func(v any) uint32 {
		n, _ := v.(json.Number)
		i, _ := n.Int64()
		return uint32(i)
	}
	var out []uint32
	c, _ := raw["container"].(map[string]any)
	mappings := list(c["portMappings"])
	if d, ok := c["docker"].(map[string]any); ok && len(mappings) == 0 {
		mappings = list(d["portMappings"])
	}
	if len(mappings) > 0 {
		for _, pm := range mappings {
			pmm, _ := pm.(map[string]any)
			out = append(out, num(pmm["servicePort"]))
		}
		return out
	}
	for _, pd := range list(raw["portDefinitions"]) {
		pdm, _ := pd.(map[string]any)
		out = append(out, num(pdm["port"]))
	}
	if len(out) == 0 {
		for _, p := range list(raw["ports"]) {
			out = append(out, num(p))
		}
	}
	return out
}

// healthLines describes each health check and how Flotilla runs it.
func healthLines(raw map[string]any) []string {
	var out []string
	for _, h := range list(raw["healthChecks"]) {
		hm, _ := h.(map[string]any)
		proto := strings.ToUpper(str(hm["protocol"]))
		if proto == "" {
			proto = "HTTP"
		}
		what := proto
		if p := str(hm["path"]); p != "" && strings.Contains(proto, "HTTP") {
			what += " " + p
		}
		switch {
		case hm["port"] != nil:
			what += fmt.Sprintf(" on port %v", hm["port"])
		case hm["portIndex"] != nil:
			what += fmt.Sprintf(" on port index %v", hm["portIndex"])
		}
		if c, ok := hm["command"].(map[string]any); ok {
			what += fmt.Sprintf(" %q", str(c["value"]))
		}
		timing := []string{}
		for _, k := range [][2]string{{"gracePeriodSeconds", "grace"}, {"intervalSeconds", "interval"}, {"timeoutSeconds", "timeout"}, {"delaySeconds", "delay"}} {
			if v, ok := hm[k[0]]; ok {
				timing = append(timing, fmt.Sprintf("%s %v s", k[1], v))
			}
		}
		kill := "kills after 3 failures (Marathon's default)"
		if v, ok := hm["maxConsecutiveFailures"]; ok {
			kill = fmt.Sprintf("kills after %v failures", v)
			if fmt.Sprint(v) == "0" {
				kill = "never kills (maxConsecutiveFailures 0)"
			}
		}
		line := what + ": " + healthTranslation(proto) + "; " + kill
		if len(timing) > 0 {
			line += "; " + strings.Join(timing, ", ")
		}
		out = append(out, line)
	}
	return out
}

// healthTranslation is how Flotilla runs a Marathon health check protocol
// (framework/taskinfo.go): every check goes to Mesos with the task.
func healthTranslation(proto string) string {
	switch proto {
	case "HTTP", "HTTPS", "TCP":
		return "probed by the leading Flotilla from its own host, as Marathon probed it (every HTTP/HTTPS/TCP check of the app runs)"
	case "COMMAND":
		return "a Mesos command check in the task's sandbox, as in Marathon"
	case "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP":
		return "a Mesos check, as in Marathon"
	}
	return "refused unless Flotilla knows the protocol"
}

// deprecatedLines names the deprecated Marathon fields the app uses and
// what Flotilla makes of them.
func deprecatedLines(raw map[string]any, app *appspec.App) []string {
	var out []string
	if p := list(raw["ports"]); len(p) > 0 {
		if (app != nil && app.Container != nil && len(app.Container.PortMappings) > 0) || (app == nil && rawHasMappings(raw)) {
			out = append(out, fmt.Sprintf("ports %v dropped (they repeat the port mappings' service ports)", p))
		} else {
			out = append(out, fmt.Sprintf("ports %v → portDefinitions", p))
		}
	}
	if u := list(raw["uris"]); len(u) > 0 {
		out = append(out, fmt.Sprintf("uris (%d) → fetch, archives extracted", len(u)))
	}
	if c, ok := raw["container"].(map[string]any); ok {
		if d, ok := c["docker"].(map[string]any); ok {
			if n := str(d["network"]); n != "" {
				out = append(out, fmt.Sprintf("container.docker.network %s → networks", n))
			}
			if len(list(d["portMappings"])) > 0 {
				out = append(out, "container.docker.portMappings → container.portMappings")
			}
		}
	}
	return out
}

// noEffectLines names the Marathon fields of the app that Flotilla
// accepts and that change nothing here.
func noEffectLines(raw map[string]any) []string {
	var out []string
	if e := str(raw["executor"]); e == "//cmd" {
		out = append(out, `executor "//cmd" (the default executor)`)
	}
	for _, f := range list(raw["fetch"]) {
		if fm, _ := f.(map[string]any); fm["cache"] == true {
			out = append(out, "fetch[].cache (localmesos agents have no fetcher cache)")
			break
		}
	}
	for _, r := range list(raw["readinessChecks"]) {
		if rm, _ := r.(map[string]any); rm["preserveLastResponse"] == true {
			out = append(out, "readinessChecks[].preserveLastResponse (the last response is not kept)")
			break
		}
	}
	var empty []string
	for _, k := range []string{"storeUrls", "ipAddress", "residency", "tty", "executor"} {
		if v, ok := raw[k]; ok && appspec.IsEmptyJSON(v) {
			empty = append(empty, k)
		}
	}
	if len(empty) > 0 {
		sort.Strings(empty)
		out = append(out, "empty "+strings.Join(empty, ", "))
	}
	return out
}

// rawHasMappings says whether an exported app maps container ports.
func rawHasMappings(raw map[string]any) bool {
	c, _ := raw["container"].(map[string]any)
	d, _ := c["docker"].(map[string]any)
	return len(list(c["portMappings"])) > 0 || len(list(d["portMappings"])) > 0
}
