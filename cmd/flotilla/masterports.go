package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/flotilla-sched/flotilla/framework"
)

// masterTaskPorts reads the agent, host and ports of this framework's
// running tasks (every one, with no ports for apps that have none) from
// the leading master's /master/state (discovery's
// Config.MasterPorts): a new leader adopts the tasks the old one launched
// after its last task record without their ports, and Mesos status
// updates carry none. Ports come from each task's DiscoveryInfo, which
// Flotilla fills in port-index order (the resources' ranges are sorted).
func masterTaskPorts(master func(ctx context.Context) (string, error), frameworkID func() string, client *http.Client) func(ctx context.Context) (map[string]framework.Task, error) {
	return func(ctx context.Context) (map[string]framework.Task, error) {
		base, err := master(ctx)
		if err != nil {
			return nil, fmt.Errorf("no leading Mesos master is known: %w", err)
		}
		u, err := url.Parse(base)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("the Mesos master's URL %q cannot be used: %v", base, err)
		}
		var state struct {
			Slaves []struct {
				ID       string `json:"id"`
				Hostname string `json:"hostname"`
			} `json:"slaves"`
			Frameworks []struct {
				ID    string `json:"id"`
				Tasks []struct {
					ID        string `json:"id"`
					State     string `json:"state"`
					AgentID   string `json:"slave_id"`
					Discovery struct {
						Ports struct {
							Ports []struct {
								Number uint64 `json:"number"`
							} `json:"ports"`
						} `json:"ports"`
					} `json:"discovery"`
				} `json:"tasks"`
			} `json:"frameworks"`
		}
		if _, err := getJSON(ctx, client, u.Scheme+"://"+u.Host+"/master/state", &state); err != nil {
			return nil, err
		}
		hosts := make(map[string]string, len(state.Slaves))
		for _, a := range state.Slaves {
			hosts[a.ID] = a.Hostname
		}
		fw := frameworkID()
		out := map[string]framework.Task{}
		for _, f := range state.Frameworks {
			if f.ID != fw {
				continue
			}
			for _, t := range f.Tasks {
				if t.State != "TASK_RUNNING" {
					continue
				}
				var ports []uint64
				for _, p := range t.Discovery.Ports.Ports {
					ports = append(ports, p.Number)
				}
				out[t.ID] = framework.Task{AgentID: t.AgentID, Host: hosts[t.AgentID], Ports: ports}
			}
		}
		return out, nil
	}
}
