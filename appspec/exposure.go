package appspec

import (
	"sort"
	"strings"
)

// Exposure modes.
const (
	ExposureInternal = "internal"
	ExposureExternal = "external"
)

// marathon-lb labels Flotilla honours, so apps already published through
// marathon-lb keep their exposure when they move over.
const (
	LabelHAProxyGroup = "HAPROXY_GROUP"
	LabelHAProxyVHost = "HAPROXY_0_VHOST"
	LabelHAProxyPath  = "HAPROXY_0_PATH"
)

// EffectiveExposure is how the gateway must treat the app. An explicit
// exposure field wins; otherwise marathon-lb's labels count
// (HAPROXY_GROUP containing "external", with HAPROXY_0_VHOST host names
// separated by commas and HAPROXY_0_PATH paths separated by spaces or
// commas); otherwise the app is internal. The result never aliases the
// app's slices.
func (a *App) EffectiveExposure() Exposure {
	if a.Exposure != nil {
		e := Exposure{
			Mode:   a.Exposure.Mode,
			VHosts: append([]string(nil), a.Exposure.VHosts...),
			Paths:  append([]string(nil), a.Exposure.Paths...),
		}
		if e.Mode == "" {
			e.Mode = ExposureInternal
		}
		return e
	}
	external := false
	for _, g := range strings.Split(a.Labels[LabelHAProxyGroup], ",") {
		if strings.TrimSpace(g) == ExposureExternal {
			external = true
		}
	}
	if !external {
		return Exposure{Mode: ExposureInternal}
	}
	return Exposure{
		Mode:   ExposureExternal,
		VHosts: splitList(a.Labels[LabelHAProxyVHost], ","),
		Paths:  splitList(a.Labels[LabelHAProxyPath], ", "),
	}
}

func splitList(s, seps string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(seps, r) }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// SecretEnv maps each env variable that takes a secret to the secret's
// Vault source ("<path>#<field>"). It holds references only.
func (a *App) SecretEnv() map[string]string {
	out := map[string]string{}
	for k, v := range a.Env {
		if v.Secret != "" {
			out[k] = a.Secrets[v.Secret].Source
		}
	}
	return out
}

// SecretNames lists the names of the secrets the env uses, sorted.
func (a *App) SecretNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range a.Env {
		if v.Secret != "" && !seen[v.Secret] {
			seen[v.Secret] = true
			out = append(out, v.Secret)
		}
	}
	sort.Strings(out)
	return out
}
