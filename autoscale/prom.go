package autoscale

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
)

// PromSource scrapes the metric an app's autoscale.prometheus block names
// from each task: GET http://<host>:<ports[portIndex]><path>.
type PromSource struct {
	client  *http.Client
	timeout time.Duration
}

// NewPromSource returns a Prometheus source; a nil client means a fresh
// one, a zero timeout DefaultTimeout per request.
func NewPromSource(client *http.Client, timeout time.Duration) *PromSource {
	return &PromSource{client: clientOr(client), timeout: timeoutOr(timeout)}
}

// Sample implements Source. Tasks are scraped concurrently; a task's value
// is the sum of the series that carry the block's labels (all of them
// when it names none), so a metric split by an extra label still counts
// whole.
func (s *PromSource) Sample(ctx context.Context, app *appspec.App, tasks []framework.Task) (Sample, error) {
	if app.Autoscale == nil || app.Autoscale.Prometheus == nil {
		return Sample{}, fmt.Errorf("autoscale: app %s has no prometheus block", app.ID)
	}
	pm := app.Autoscale.Prometheus
	path := pm.Path
	if path == "" {
		path = "/metrics"
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
		out  = Sample{Values: make(map[string]float64, len(tasks))}
	)
	for _, t := range tasks {
		if pm.PortIndex < 0 || pm.PortIndex >= len(t.Ports) {
			errs = append(errs, fmt.Errorf("%w: task %s has %d ports, portIndex %d", ErrNoPort, t.ID, len(t.Ports), pm.PortIndex))
			continue
		}
		url := "http://" + net.JoinHostPort(t.Host, strconv.FormatUint(t.Ports[pm.PortIndex], 10)) + path
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.scrape(ctx, url, pm)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("task %s: %w", t.ID, err))
				return
			}
			out.Values[t.ID] = v
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func (s *PromSource) scrape(ctx context.Context, url string, pm *appspec.PromMetric) (float64, error) {
	body, err := get(ctx, s.client, s.timeout, url)
	if err != nil {
		return 0, err
	}
	return parseMetric(body, pm.Name, pm.Labels)
}

// parseMetric finds name in a text-format page and sums the matching
// series; counters, gauges and untyped values are read as they are.
func parseMetric(body []byte, name string, labels map[string]string) (float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("autoscale: parse metrics: %w", err)
	}
	fam, ok := fams[name]
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrNoSeries, name)
	}
	var sum float64
	var n int
	for _, m := range fam.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		default:
			continue
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: %s%v", ErrNoSeries, name, labels)
	}
	return sum, nil
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(want)
}
