package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// logsFollowFlag lets "flotilla app logs ID -f" mean follow, as in docker
// and kubectl, although -f is deploy's file flag: a command line with the
// logs command has no file to give, so its -f is rewritten to -follow.
func logsFollowFlag(args []string) []string {
	isLogs := false
	for _, a := range args {
		if a == "logs" || a == "log" {
			isLogs = true
		}
		if a == "deploy" {
			return args
		}
	}
	if !isLogs {
		return args
	}
	out := make([]string, len(args))
	for i, a := range args {
		if a == "-f" || a == "--f" {
			a = "-follow"
		}
		out[i] = a
	}
	return out
}

// logsRescan is how often "logs -f" without --task asks for the app's
// tasks, to follow instances that started after it (a scale-up, a
// replacement, a restart).
const logsRescan = 2 * time.Second

// logs prints one task's output, or every instance's interleaved line by
// line with the task id in front, through GET /v2/apps/{id}/tasks/{t}/logs.
// Following every instance, it keeps following the instances that start
// later, from their first byte, until interrupted.
func (c *appCLI) logs(ctx context.Context, id string) error {
	if c.task != "" {
		var mu sync.Mutex
		err := c.taskLog(ctx, id, c.task, "", c.tail, &mu)
		if ctx.Err() != nil {
			return nil // interrupted while following: the normal way out
		}
		return err
	}
	tasks, err := c.taskIDs(ctx, id)
	if err != nil {
		return err
	}
	if len(tasks) == 0 && !c.followLogs {
		return fmt.Errorf("app %s has no tasks; its last failure's logs: flotilla app logs %s --task <id from 'flotilla app show %s'>", id, id, id)
	}
	var (
		mu     sync.Mutex // the output's lines and failed
		wg     sync.WaitGroup
		failed []error
		seen   = map[string]bool{}
	)
	start := func(t string, tail int) {
		seen[t] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.taskLog(ctx, id, t, t+" | ", tail, &mu); err != nil {
				mu.Lock()
				failed = append(failed, fmt.Errorf("task %s: %w", t, err))
				if c.followLogs {
					// Following, nothing waits for the end to report: a
					// task that ended and was collected says so now.
					fmt.Fprintln(c.errOut, "flotilla app logs:", failed[len(failed)-1])
				}
				mu.Unlock()
			}
		}()
	}
	for _, t := range tasks {
		start(t, c.tail)
	}
	if c.followLogs {
		tick := time.NewTicker(logsRescan)
		defer tick.Stop()
	rescan:
		for {
			select {
			case <-ctx.Done():
				break rescan
			case <-tick.C:
			}
			now, err := c.taskIDs(ctx, id)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				var ae *apiError
				if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
					wg.Wait()
					return err // the app is gone: nothing more will start
				}
				// A blip (leader change, timeout): the followers go on.
				mu.Lock()
				fmt.Fprintln(c.errOut, "flotilla app logs: listing the tasks again:", err)
				mu.Unlock()
				continue
			}
			for _, t := range now {
				if !seen[t] {
					start(t, -1) // new since the last look: all it wrote
				}
			}
		}
		wg.Wait()
		return nil // interrupted while following: the normal way out
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	if len(failed) == len(tasks) {
		return errors.Join(failed...)
	}
	for _, err := range failed {
		fmt.Fprintln(c.errOut, "flotilla app logs:", err)
	}
	return nil
}

// taskIDs lists the ids of the app's tasks.
func (c *appCLI) taskIDs(ctx context.Context, id string) ([]string, error) {
	var res struct {
		Tasks []cliTask `json:"tasks"`
	}
	if _, err := c.call(ctx, "GET", appPath(id)+"/tasks", "", &res); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(res.Tasks))
	for _, t := range res.Tasks {
		ids = append(ids, t.ID)
	}
	return ids, nil
}

// taskLog streams one task's log, writing whole lines under mu so that
// instances interleave by line, never inside one.
func (c *appCLI) taskLog(ctx context.Context, appID, taskID, prefix string, tail int, mu *sync.Mutex) error {
	q := url.Values{}
	if c.stderr {
		q.Set("stream", "stderr")
	}
	if c.followLogs {
		q.Set("follow", "true")
	}
	if tail >= 0 {
		q.Set("tail", strconv.Itoa(tail))
	}
	if !c.followLogs {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	path := appPath(appID) + "/tasks/" + url.PathEscape(taskID) + "/logs?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.api+path, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	c.auth(req)
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w (is Flotilla running at %s? set --api or FLOTILLA_API)", path, err, c.api)
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		if err != nil {
			return fmt.Errorf("GET %s: %s (body unreadable: %w)", path, res.Status, err)
		}
		ae := &apiError{Status: res.StatusCode}
		if json.Unmarshal(b, ae) != nil || ae.Message == "" {
			ae.Message = strings.TrimSpace(string(b))
		}
		return ae
	}
	rd := bufio.NewReader(res.Body)
	for {
		line, err := rd.ReadString('\n')
		if line != "" {
			if !strings.HasSuffix(line, "\n") {
				line += "\n"
			}
			mu.Lock()
			_, werr := io.WriteString(c.out, prefix+line)
			mu.Unlock()
			if werr != nil {
				return fmt.Errorf("write: %w", werr)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading the log stream: %w", err)
		}
	}
}
