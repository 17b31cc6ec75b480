package deploy

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/flotilla-sched/flotilla/appspec"
)

func planApp(id string, deps ...string) *appspec.App {
	return &appspec.App{ID: id, Cmd: "x", Instances: 1, Dependencies: deps}
}

// stepsString writes a plan as "stop:/a | /b,/c | /d".
func stepsString(steps []PlanStep) string {
	var parts []string
	for _, s := range steps {
		var ids []string
		for _, c := range s {
			if c.App == nil {
				ids = append(ids, "stop:"+c.ID)
			} else {
				ids = append(ids, c.ID)
			}
		}
		parts = append(parts, strings.Join(ids, ","))
	}
	return strings.Join(parts, " | ")
}

func TestPlan(t *testing.T) {
	t.Parallel()
	apps := func(as ...*appspec.App) map[string]*appspec.App {
		m := map[string]*appspec.App{}
		for _, a := range as {
			m[a.ID] = a
		}
		return m
	}
	tests := []struct {
		name      string
		in        PlanInput
		want      string
		wantCycle bool
		unknown   bool
	}{
		{"independent apps: one step", PlanInput{Changes: apps(planApp("/s/a"), planApp("/s/b"))}, "/s/a,/s/b", false, false},
		{"a chain", PlanInput{Changes: apps(planApp("/s/web", "/s/api"), planApp("/s/api", "/s/db"), planApp("/s/db"))}, "/s/db | /s/api | /s/web", false, false},
		{"a dependency on an unchanged app is met", PlanInput{Current: apps(planApp("/s/db")), Changes: apps(planApp("/s/web", "/s/db"))}, "/s/web", false, false},
		{"a group dependency stands for its apps", PlanInput{Changes: apps(planApp("/s/web", "/s/back"), planApp("/s/back/a"), planApp("/s/back/b"))}, "/s/back/a,/s/back/b | /s/web", false, false},
		{"inherited from the group record", PlanInput{Changes: apps(planApp("/s/front/web"), planApp("/s/db")), GroupDeps: map[string][]string{"/s/front": {"/s/db"}}}, "/s/db | /s/front/web", false, false},
		{"removals first", PlanInput{Current: apps(planApp("/s/old")), Changes: map[string]*appspec.App{"/s/old": nil, "/s/new": planApp("/s/new")}}, "stop:/s/old | /s/new", false, false},
		{"removing what does not exist is nothing", PlanInput{Changes: map[string]*appspec.App{"/s/none": nil}}, "", false, false},
		{"a cycle", PlanInput{Changes: apps(planApp("/s/a", "/s/b"), planApp("/s/b", "/s/c"), planApp("/s/c", "/s/a"))}, "", true, false},
		{"a cycle through an unchanged app", PlanInput{Current: apps(planApp("/s/b", "/s/a")), Changes: apps(planApp("/s/a", "/s/b"))}, "", true, false},
		{"a dependency on nothing", PlanInput{Changes: apps(planApp("/s/a", "/s/ghost"))}, "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			steps, err := Plan(tc.in)
			var ce *CycleError
			var ue *UnknownDependencyError
			switch {
			case tc.wantCycle:
				if !errors.As(err, &ce) || len(ce.Cycle) < 3 || ce.Cycle[0] != ce.Cycle[len(ce.Cycle)-1] {
					t.Fatalf("error %v, want a cycle", err)
				}
			case tc.unknown:
				if !errors.As(err, &ue) {
					t.Fatalf("error %v, want an unknown dependency", err)
				}
			case err != nil:
				t.Fatal(err)
			default:
				if got := stepsString(steps); got != tc.want {
					t.Fatalf("plan %q, want %q", got, tc.want)
				}
			}
		})
	}
}

// BenchmarkPlan1000 is the figure: 1,000 apps in 50 groups, each
// group's apps depending on the previous group, planned at once beside
// 10,000 apps that do not change.
func BenchmarkPlan1000(b *testing.B) {
	cur := map[string]*appspec.App{}
	for i := 0; i < 10000; i++ {
		a := planApp(fmt.Sprintf("/other/g%d/a%d", i%100, i))
		cur[a.ID] = a
	}
	changes := map[string]*appspec.App{}
	for g := 0; g < 50; g++ {
		for i := 0; i < 20; i++ {
			var deps []string
			if g > 0 {
				deps = []string{fmt.Sprintf("/shop/g%02d", g-1)}
			}
			a := planApp(fmt.Sprintf("/shop/g%02d/a%02d", g, i), deps...)
			changes[a.ID] = a
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		steps, err := Plan(PlanInput{Current: cur, Changes: changes})
		if err != nil || len(steps) != 50 {
			b.Fatalf("%d steps, %v", len(steps), err)
		}
	}
}
