package autoscale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
)

// Source collects one metric for an app's tasks.
type Source interface {
	// Sample returns a value per task id for the tasks it could measure.
	// A Sample may be partial alongside a non-nil error: one unreachable
	// agent or task must not hide the others' numbers.
	Sample(ctx context.Context, app *appspec.App, tasks []framework.Task) (Sample, error)
}

// Sample is one collection: the metric per task id. Tasks absent from
// Values count as missing.
type Sample struct {
	Values map[string]float64
}

// RequestRates is what the rps source needs from the gateway.
type RequestRates interface {
	RequestRate(appID string) map[string]float64
}

// Scaler changes an app's instances the way the API's scale does, so that
// the change is a normal deployment.
type Scaler interface {
	Scale(ctx context.Context, appID string, instances int) error
}

// Errors a Source returns; test them with errors.Is.
var (
	// ErrNoAgent: the task's agent has no known URL (gone, or the agent
	// serves no HTTP).
	ErrNoAgent = errors.New("autoscale: agent unknown")
	// ErrNoPort: the task lacks the port the prometheus block points at.
	ErrNoPort = errors.New("autoscale: task has no such port")
	// ErrNoSeries: the scrape had no series with the metric name and labels.
	ErrNoSeries = errors.New("autoscale: no matching series")
)

// DefaultTimeout bounds each HTTP request a source makes.
const DefaultTimeout = 2 * time.Second

// maxBody bounds what a source reads from an agent or a task: a metrics
// page is small, and a runaway one must not exhaust the leader's memory.
const maxBody = 8 << 20

// get fetches url with its own deadline and returns the body.
func get(ctx context.Context, c *http.Client, timeout time.Duration, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("autoscale: get %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("autoscale: get %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("autoscale: get %s: read body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("autoscale: get %s: status %d", url, resp.StatusCode)
	}
	return body, nil
}

func clientOr(c *http.Client) *http.Client {
	if c == nil {
		return &http.Client{}
	}
	return c
}

func timeoutOr(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}
