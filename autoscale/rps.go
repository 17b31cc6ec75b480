package autoscale

import (
	"context"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
)

// RPSSource reads requests/s per task from the gateway, which already
// keeps them over a sliding window; no I/O.
type RPSSource struct {
	Rates RequestRates
}

// Sample implements Source.
func (s RPSSource) Sample(_ context.Context, app *appspec.App, tasks []framework.Task) (Sample, error) {
	rates := s.Rates.RequestRate(app.ID)
	out := Sample{Values: make(map[string]float64, len(tasks))}
	for _, t := range tasks {
		if r, ok := rates[t.ID]; ok {
			out.Values[t.ID] = r
		}
	}
	return out, nil
}
