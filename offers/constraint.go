package offers

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// op is a constraint operator, resolved once so checks switch on an int.
type op int8

const (
	opUnique op = iota
	opCluster
	opGroupBy
	opLike
	opUnlike
	opMaxPer
	opIs
)

var opNames = map[string]op{
	"UNIQUE": opUnique, "CLUSTER": opCluster, "GROUP_BY": opGroupBy,
	"LIKE": opLike, "UNLIKE": opUnlike, "MAX_PER": opMaxPer, "IS": opIs,
}

// ParseConstraint parses Marathon's [field, operator] or [field, operator,
// value] form, checks the value the operator needs and compiles a LIKE or
// UNLIKE regex (matched against the whole value, as Marathon does).
// "*hostname" is accepted as Marathon's alias of "hostname".
func ParseConstraint(c []string) (Constraint, error) {
	k, err := parse(c)
	if err != nil {
		return Constraint{}, fmt.Errorf("offers: constraint %s: %w", quoteList(c), err)
	}
	return k, nil
}

// ParseConstraints parses an app's constraints (Marathon's
// [[field, operator, value], …]); an error names the index of the first
// bad one, e.g. `offers: constraints[1] ["rack","MAX_PER"]: MAX_PER needs a value`.
func ParseConstraints(cs [][]string) ([]Constraint, error) {
	out := make([]Constraint, 0, len(cs))
	for i, c := range cs {
		k, err := parse(c)
		if err != nil {
			return nil, fmt.Errorf("offers: constraints[%d] %s: %w", i, quoteList(c), err)
		}
		out = append(out, k)
	}
	return out, nil
}

func parse(c []string) (Constraint, error) {
	if len(c) < 2 || len(c) > 3 {
		return Constraint{}, fmt.Errorf("want [field, operator] or [field, operator, value], got %d elements", len(c))
	}
	k := Constraint{Field: c[0], Operator: c[1]}
	if len(c) == 3 {
		k.Value = c[2]
	}
	if err := k.compile(); err != nil {
		return Constraint{}, err
	}
	return k, nil
}

// compile checks k and fills its unexported fields.
func (k *Constraint) compile() error {
	// Marathon's names for the agent's hostname and fault domain: the
	// domain arrives as the attributes "@region" and "@zone" (FromMesos).
	if k.Field == "*hostname" || k.Field == "@hostname" {
		k.Field = "hostname"
	}
	if k.Field == "" {
		return fmt.Errorf("field is empty; want hostname or an agent attribute name")
	}
	o, ok := opNames[k.Operator]
	if !ok {
		return fmt.Errorf("unknown operator %q; want one of UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS", k.Operator)
	}
	switch o {
	case opUnique:
		if k.Value != "" {
			return fmt.Errorf("UNIQUE takes no value, got %q", k.Value)
		}
	case opLike, opUnlike:
		if k.Value == "" {
			return fmt.Errorf("%s needs a regular expression value", k.Operator)
		}
		re, err := regexp.Compile("^(?:" + k.Value + ")$")
		if err != nil {
			return fmt.Errorf("%s value %q is not a valid regular expression: %w", k.Operator, k.Value, err)
		}
		k.re = re
	case opIs:
		if k.Value == "" {
			return fmt.Errorf("IS needs a value")
		}
	case opMaxPer:
		if k.Value == "" {
			return fmt.Errorf("MAX_PER needs a value")
		}
		n, err := strconv.Atoi(k.Value)
		if err != nil || n < 1 {
			return fmt.Errorf("MAX_PER value %q is not a positive integer", k.Value)
		}
		k.num = n
	case opGroupBy:
		if k.Value != "" {
			n, err := strconv.Atoi(k.Value)
			if err != nil || n < 0 {
				return fmt.Errorf("GROUP_BY value %q is not a number of groups (a non-negative integer)", k.Value)
			}
			k.num = n
		}
	}
	k.ok = true
	return nil
}

func (k *Constraint) op() op { return opNames[k.Operator] }

func quoteList(c []string) string {
	q := make([]string, len(c))
	for i, s := range c {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ",") + "]"
}
