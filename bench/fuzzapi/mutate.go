package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"regexp"
	"strconv"
	"strings"

	"github.com/flotilla-sched/flotilla/appspec"
)

// base returns one of the valid app definitions mutations start from, with
// id as its id. Each is accepted as it stands (the run checks that once).
func base(r *rand.Rand, id string) map[string]any {
	switch r.Intn(4) {
	case 0:
		return map[string]any{"id": id, "cmd": "sleep 3600", "cpus": 0.01, "mem": 8, "instances": 1}
	case 1:
		return map[string]any{"id": id, "cpus": 0.01, "mem": 8, "instances": 2,
			"container": map[string]any{"type": "DOCKER", "docker": map[string]any{"image": "busybox:1.36", "network": "HOST"}},
			"args":      []any{"sleep", "3600"}}
	case 2:
		return map[string]any{"id": id, "cmd": "sleep 3600", "cpus": 0.01, "mem": 8, "instances": 1,
			"portDefinitions": []any{map[string]any{"port": 0, "name": "http"}},
			"healthChecks":    []any{map[string]any{"protocol": "COMMAND", "command": map[string]any{"value": "true"}, "intervalSeconds": 10}},
			"labels":          map[string]any{"team": "fuzz"}, "env": map[string]any{"MODE": "fuzz"},
			"exposure": map[string]any{"mode": "external", "vhosts": []any{strings.TrimPrefix(strings.ReplaceAll(id, "/", "-"), "-") + ".example.com"}}}
	default:
		return map[string]any{"id": id, "cmd": "sleep 3600", "cpus": 0.01, "mem": 8, "instances": 1,
			"constraints":     []any{[]any{"hostname", "UNIQUE"}},
			"upgradeStrategy": map[string]any{"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5},
			"backoffSeconds":  1, "backoffFactor": 1.15, "maxLaunchDelaySeconds": 300,
			"autoscale": map[string]any{"min": 1, "max": 3, "metric": "cpu", "target": 0.7}}
	}
}

// mutation pushes one field of a valid app to an extreme.
type mutation struct {
	name  string
	apply func(a map[string]any, r *rand.Rand, lim int)
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func set(field string, v any) func(map[string]any, *rand.Rand, int) {
	return func(a map[string]any, _ *rand.Rand, _ int) { a[field] = v }
}

func many(n int, f func(i int) any) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func manyMap(n int, f func(i int) (string, any)) map[string]any {
	out := make(map[string]any, n)
	for i := 0; i < n; i++ {
		k, v := f(i)
		out[k] = v
	}
	return out
}

// nested stands for an array nested depth deep. encoding/json refuses to
// write one deeper than 10,000 (even as a RawMessage), so it is a marker
// string that encode replaces.
func nested(depth int) string { return fmt.Sprintf("@@nested:%d@@", depth) }

var nestedMarker = regexp.MustCompile(`"@@nested:(\d+)@@"`)

// encode writes the app as JSON, with nested markers expanded.
func encode(app map[string]any) ([]byte, error) {
	b, err := json.Marshal(app)
	if err != nil {
		return nil, err
	}
	return nestedMarker.ReplaceAllFunc(b, func(m []byte) []byte {
		depth, _ := strconv.Atoi(string(nestedMarker.FindSubmatch(m)[1]))
		return []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth))
	}), nil
}

// pick chooses one of the values by r; used where one mutation covers a
// family of extremes.
func pick(vs ...any) func(map[string]any, *rand.Rand, int) any {
	return func(_ map[string]any, r *rand.Rand, _ int) any { return vs[r.Intn(len(vs))] }
}

func setPick(field string, vs ...any) func(map[string]any, *rand.Rand, int) {
	p := pick(vs...)
	return func(a map[string]any, r *rand.Rand, lim int) { a[field] = p(a, r, lim) }
}

var (
	hugeNumbers = []any{raw("1e308"), raw("-1e308"), raw("5e-324"), raw("1e309"), raw("-0"), raw("9223372036854775808"),
		raw("-9223372036854775809"), raw("2147483648"), raw("1.7976931348623157e308"), -1, 0, raw("1e-308")}
	segment = strings.Repeat("a", appspec.MaxIDSegment)
)

func mutations() []mutation {
	return []mutation{
		{"instances-at-limit", func(a map[string]any, _ *rand.Rand, lim int) { a["instances"] = lim }},
		{"instances-over-limit", func(a map[string]any, _ *rand.Rand, lim int) { a["instances"] = lim + 1 }},
		{"instances-1e9", set("instances", 1_000_000_000)},
		{"instances-extreme", setPick("instances", hugeNumbers...)},
		{"autoscale-max-extreme", func(a map[string]any, r *rand.Rand, lim int) {
			a["autoscale"] = map[string]any{"min": 1, "max": []any{lim, lim + 1, 1_000_000_000, -1}[r.Intn(4)], "metric": "cpu", "target": 0.7}
		}},
		{"cpus-extreme", setPick("cpus", hugeNumbers...)},
		{"mem-extreme", setPick("mem", hugeNumbers...)},
		{"disk-extreme", setPick("disk", hugeNumbers...)},
		{"gpus-extreme", setPick("gpus", hugeNumbers...)},
		{"backoff-extreme", func(a map[string]any, r *rand.Rand, _ int) {
			a["backoffSeconds"] = hugeNumbers[r.Intn(len(hugeNumbers))]
			a["backoffFactor"] = hugeNumbers[r.Intn(len(hugeNumbers))]
			a["maxLaunchDelaySeconds"] = hugeNumbers[r.Intn(len(hugeNumbers))]
		}},
		{"backoff-1e18", func(a map[string]any, _ *rand.Rand, _ int) {
			a["backoffSeconds"], a["backoffFactor"] = raw("1e18"), raw("1e308")
		}},
		{"upgrade-strategy-extreme", func(a map[string]any, r *rand.Rand, _ int) {
			a["upgradeStrategy"] = map[string]any{"minimumHealthCapacity": hugeNumbers[r.Intn(len(hugeNumbers))], "maximumOverCapacity": hugeNumbers[r.Intn(len(hugeNumbers))]}
		}},
		{"id-segment-63", func(a map[string]any, r *rand.Rand, _ int) { a["id"] = a["id"].(string) + "/" + segment }},
		{"id-segment-64", func(a map[string]any, r *rand.Rand, _ int) { a["id"] = a["id"].(string) + "/" + segment + "b" }},
		{"id-longest", func(a map[string]any, _ *rand.Rand, _ int) { a["id"] = padID(a["id"].(string), appspec.MaxIDLength) }},
		{"id-too-long", func(a map[string]any, _ *rand.Rand, _ int) { a["id"] = padID(a["id"].(string), appspec.MaxIDLength+1) }},
		{"id-300", func(a map[string]any, _ *rand.Rand, _ int) { a["id"] = "/" + strings.Repeat("x", 300) }},
		{"id-many-segments", func(a map[string]any, _ *rand.Rand, _ int) { a["id"] = a["id"].(string) + strings.Repeat("/a", 5000) }},
		{"id-huge", func(a map[string]any, _ *rand.Rand, _ int) { a["id"] = "/" + strings.Repeat("y", 900_000) }},
		{"ports-1000", func(a map[string]any, _ *rand.Rand, _ int) {
			a["portDefinitions"] = many(appspec.DefaultMaxPorts, func(int) any { return map[string]any{"port": 0} })
		}},
		{"ports-10000", func(a map[string]any, _ *rand.Rand, _ int) {
			a["portDefinitions"] = many(10_000, func(i int) any { return map[string]any{"port": i} })
		}},
		{"ports-extreme-numbers", func(a map[string]any, r *rand.Rand, _ int) {
			a["portDefinitions"] = []any{map[string]any{"port": []any{65535, 65536, -1, raw("4294967296"), raw("1e308")}[r.Intn(5)]}}
			a["requirePorts"] = true
		}},
		{"labels-1000", func(a map[string]any, _ *rand.Rand, _ int) {
			a["labels"] = manyMap(appspec.DefaultMaxLabels, func(i int) (string, any) { return fmt.Sprintf("k%d", i), "v" })
		}},
		{"labels-10000", func(a map[string]any, _ *rand.Rand, _ int) {
			a["labels"] = manyMap(10_000, func(i int) (string, any) { return fmt.Sprintf("k%d", i), "v" })
		}},
		{"label-value-64k", func(a map[string]any, r *rand.Rand, _ int) {
			a["labels"] = map[string]any{"big": strings.Repeat("v", appspec.DefaultMaxLabelValueBytes+r.Intn(2))}
		}},
		{"label-key-1k", func(a map[string]any, r *rand.Rand, _ int) {
			a["labels"] = map[string]any{strings.Repeat("K", appspec.DefaultMaxLabelKeyBytes+r.Intn(2)): "v"}
		}},
		{"env-1000", func(a map[string]any, _ *rand.Rand, _ int) {
			a["env"] = manyMap(appspec.DefaultMaxEnv, func(i int) (string, any) { return fmt.Sprintf("E%d", i), "v" })
		}},
		{"env-10000", func(a map[string]any, _ *rand.Rand, _ int) {
			a["env"] = manyMap(10_000, func(i int) (string, any) { return fmt.Sprintf("E%d", i), "v" })
		}},
		{"env-value-64k", func(a map[string]any, r *rand.Rand, _ int) {
			a["env"] = map[string]any{"BIG": strings.Repeat("v", appspec.DefaultMaxEnvValueBytes+r.Intn(2))}
		}},
		{"env-many-64k-values", func(a map[string]any, _ *rand.Rand, _ int) {
			a["env"] = manyMap(15, func(i int) (string, any) { return fmt.Sprintf("BIG%d", i), strings.Repeat("v", 64_000) })
		}},
		{"secrets-many", func(a map[string]any, r *rand.Rand, _ int) {
			n := []int{appspec.DefaultMaxSecrets, appspec.DefaultMaxSecrets + 1, 5000}[r.Intn(3)]
			a["secrets"] = manyMap(n, func(i int) (string, any) {
				return fmt.Sprintf("s%d", i), map[string]any{"source": fmt.Sprintf("kv/fuzz%d#pw", i)}
			})
			a["env"] = manyMap(min(n, 1000), func(i int) (string, any) {
				return fmt.Sprintf("S%d", i), map[string]any{"secret": fmt.Sprintf("s%d", i)}
			})
		}},
		{"constraints-many", func(a map[string]any, r *rand.Rand, _ int) {
			n := []int{appspec.DefaultMaxConstraints, appspec.DefaultMaxConstraints + 1, 10_000}[r.Intn(3)]
			a["constraints"] = many(n, func(i int) any { return []any{"rack", "LIKE", fmt.Sprintf("r%d.*", i)} })
		}},
		{"constraints-odd", func(a map[string]any, r *rand.Rand, _ int) {
			a["constraints"] = []any{[]any{"hostname", "MAX_PER", []any{"0", "-1", "99999999999999999999", "1e308"}[r.Intn(4)]},
				[]any{"rack", "GROUP_BY", "2147483648"}, []any{"hostname", "LIKE", strings.Repeat("(", 1000)}}
		}},
		{"health-checks-many", func(a map[string]any, r *rand.Rand, _ int) {
			n := []int{appspec.DefaultMaxHealthChecks, appspec.DefaultMaxHealthChecks + 1, 1000}[r.Intn(3)]
			a["healthChecks"] = many(n, func(int) any {
				return map[string]any{"protocol": "COMMAND", "command": map[string]any{"value": "true"}}
			})
		}},
		{"health-check-intervals", func(a map[string]any, r *rand.Rand, _ int) {
			a["healthChecks"] = []any{map[string]any{"protocol": "COMMAND", "command": map[string]any{"value": "true"},
				"intervalSeconds": hugeNumbers[r.Intn(len(hugeNumbers))], "timeoutSeconds": hugeNumbers[r.Intn(len(hugeNumbers))],
				"gracePeriodSeconds": hugeNumbers[r.Intn(len(hugeNumbers))], "maxConsecutiveFailures": hugeNumbers[r.Intn(len(hugeNumbers))]}}
		}},
		{"args-many", func(a map[string]any, _ *rand.Rand, _ int) {
			delete(a, "cmd")
			a["args"] = many(100_000, func(int) any { return "x" })
		}},
		{"cmd-near-1MiB", func(a map[string]any, _ *rand.Rand, _ int) {
			delete(a, "args")
			a["cmd"] = "echo " + strings.Repeat("z", appspec.MaxBodyBytes-4096)
		}},
		{"body-over-1MiB", func(a map[string]any, _ *rand.Rand, _ int) {
			delete(a, "args")
			a["cmd"] = strings.Repeat("z", appspec.MaxBodyBytes+1)
		}},
		{"docker-parameters-many", func(a map[string]any, _ *rand.Rand, _ int) {
			a["container"] = map[string]any{"type": "DOCKER", "docker": map[string]any{"image": "busybox:1.36",
				"parameters": many(20_000, func(i int) any { return map[string]any{"key": "label", "value": fmt.Sprint(i)} })}}
		}},
		{"docker-image-huge", func(a map[string]any, _ *rand.Rand, _ int) {
			a["container"] = map[string]any{"type": "DOCKER", "docker": map[string]any{"image": strings.Repeat("i", 500_000)}}
		}},
		{"deep-nesting", func(a map[string]any, r *rand.Rand, _ int) {
			field := []string{"labels", "env", "container", "constraints", "healthChecks", "cpus"}[r.Intn(6)]
			a[field] = nested([]int{100, 10_000, 200_000}[r.Intn(3)])
		}},
		{"exposure-many-vhosts", func(a map[string]any, _ *rand.Rand, _ int) {
			a["exposure"] = map[string]any{"mode": "external",
				"vhosts": many(20_000, func(i int) any { return fmt.Sprintf("h%d.example.com", i) }),
				"paths":  many(100, func(i int) any { return fmt.Sprintf("/p%d", i) })}
		}},
		{"readiness-extreme", func(a map[string]any, r *rand.Rand, _ int) {
			a["portDefinitions"] = []any{map[string]any{"port": 0, "name": "http-api"}}
			a["readinessChecks"] = []any{map[string]any{"intervalSeconds": hugeNumbers[r.Intn(len(hugeNumbers))],
				"timeoutSeconds": hugeNumbers[r.Intn(len(hugeNumbers))], "httpStatusCodesForReady": many(10_000, func(i int) any { return i })}}
		}},
		{"unreachable-extreme", func(a map[string]any, r *rand.Rand, _ int) {
			a["unreachableStrategy"] = map[string]any{"inactiveAfterSeconds": hugeNumbers[r.Intn(len(hugeNumbers))],
				"expungeAfterSeconds": hugeNumbers[r.Intn(len(hugeNumbers))]}
		}},
		{"wrong-types", func(a map[string]any, r *rand.Rand, _ int) {
			field := []string{"id", "cmd", "cpus", "instances", "env", "labels", "portDefinitions", "container", "constraints"}[r.Intn(9)]
			a[field] = []any{nil, true, "x", 1.5, []any{}, map[string]any{}}[r.Intn(6)]
		}},
		{"unknown-field-huge", func(a map[string]any, _ *rand.Rand, _ int) {
			a[strings.Repeat("f", 100_000)] = 1
		}},
	}
}

// padID extends id with segments of at most 63 characters to n characters.
func padID(id string, n int) string {
	for len(id) < n {
		seg := min(appspec.MaxIDSegment, n-len(id)-1)
		if seg <= 0 {
			id += "z"
			break
		}
		id += "/" + strings.Repeat("p", seg)
	}
	return id
}
