package api

import (
	"fmt"
	"strings"
)

// labelSelector is Marathon's ?label= filter: requirements separated by
// commas, all of which must hold: "key", "key==value", "key!=value",
// "key in (a, b)", "key notin (a, b)".
type labelSelector []labelReq

type labelReq struct {
	key    string
	op     string // exists, ==, !=, in, notin
	values []string
}

func parseLabelSelector(s string) (labelSelector, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var parts []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced ')' at %d in %q", i, s)
			}
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced '(' in %q", s)
	}
	parts = append(parts, s[start:])
	var sel labelSelector
	for _, p := range parts {
		r, err := parseLabelReq(strings.TrimSpace(p))
		if err != nil {
			return nil, err
		}
		sel = append(sel, r)
	}
	return sel, nil
}

func parseLabelReq(p string) (labelReq, error) {
	if p == "" {
		return labelReq{}, fmt.Errorf("empty requirement; write key, key==value, key!=value, key in (a,b) or key notin (a,b)")
	}
	for _, op := range []string{"==", "!="} {
		if k, v, ok := strings.Cut(p, op); ok {
			return labelReq{key: strings.TrimSpace(k), op: op, values: []string{strings.TrimSpace(v)}}, nil
		}
	}
	for _, op := range []string{" notin ", " in "} {
		if k, v, ok := strings.Cut(p, op); ok {
			v = strings.TrimSpace(v)
			if !strings.HasPrefix(v, "(") || !strings.HasSuffix(v, ")") {
				return labelReq{}, fmt.Errorf("%q: the values of %s must be in parentheses, e.g. key%s(a,b)", p, strings.TrimSpace(op), op)
			}
			var vals []string
			for _, x := range strings.Split(v[1:len(v)-1], ",") {
				vals = append(vals, strings.TrimSpace(x))
			}
			return labelReq{key: strings.TrimSpace(k), op: strings.TrimSpace(op), values: vals}, nil
		}
	}
	if strings.ContainsAny(p, " =!()") {
		return labelReq{}, fmt.Errorf("%q is not a requirement; write key, key==value, key!=value, key in (a,b) or key notin (a,b)", p)
	}
	return labelReq{key: p, op: "exists"}, nil
}

// String writes the selector back in the syntax parseLabelSelector reads,
// with no optional spaces: it parses back to the same selector.
func (sel labelSelector) String() string {
	var b strings.Builder
	for i, r := range sel {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r.key)
		switch r.op {
		case "exists":
		case "==", "!=":
			b.WriteString(r.op)
			b.WriteString(r.values[0])
		default:
			b.WriteString(" " + r.op + " (")
			b.WriteString(strings.Join(r.values, ","))
			b.WriteByte(')')
		}
	}
	return b.String()
}

func (sel labelSelector) matches(labels map[string]string) bool {
	for _, r := range sel {
		v, ok := labels[r.key]
		switch r.op {
		case "exists":
			if !ok {
				return false
			}
		case "==":
			if !ok || v != r.values[0] {
				return false
			}
		case "!=":
			if ok && v == r.values[0] {
				return false
			}
		case "in":
			if !ok || !contains(r.values, v) {
				return false
			}
		case "notin":
			if ok && contains(r.values, v) {
				return false
			}
		}
	}
	return true
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
