package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
)

const podUsage = `usage: flotilla pod [flags] <command> [args]

commands:
  list                      pods with their instances and how many are stable
  show ID                   one pod's definition (JSON)
  status ID                 one pod's instances and their containers
  deploy -f pod.json        create or replace a pod (Marathon pod JSON; -f - reads stdin)
  scale ID N                set a pod's instances
  kill ID INSTANCE          kill one instance (it is replaced)
  rm ID                     remove a pod and kill its instances

deploy, scale and rm follow the deployment until it ends unless --detach
is given; they exit non-zero if it fails.

flags (before or after the command):
`

// runPod is "flotilla pod …": /v2/pods through the same client, flags and
// deployment following as "flotilla app".
func runPod(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return runPodIO(ctx, args, os.Stdout, os.Stderr, os.Getenv, os.Stdin)
}

func runPodIO(ctx context.Context, args []string, out, errOut io.Writer, env func(string) string, stdin io.Reader) error {
	c := &appCLI{out: out, errOut: errOut, http: &http.Client{}}
	fs := c.flags("flotilla pod", env)
	usage := func(w io.Writer) {
		fmt.Fprint(w, podUsage)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	pos, err := c.parse(fs, args, func() { usage(errOut) })
	if err != nil || pos == nil {
		return err
	}
	cmd, rest := pos[0], pos[1:]
	want := func(n int, u string) error {
		if len(rest) != n {
			return fmt.Errorf("usage: flotilla pod %s", u)
		}
		return nil
	}
	switch cmd {
	case "list", "ls":
		if err := want(0, "list"); err != nil {
			return err
		}
		return c.podList(ctx)
	case "show":
		if err := want(1, "show ID"); err != nil {
			return err
		}
		b, err := c.call(ctx, "GET", podPath(rest[0]), "", nil)
		if err != nil {
			return err
		}
		return c.printJSON(b)
	case "status":
		if err := want(1, "status ID"); err != nil {
			return err
		}
		return c.podStatus(ctx, rest[0])
	case "deploy":
		if err := want(0, "deploy -f pod.json"); err != nil {
			return err
		}
		return c.podDeploy(ctx, stdin)
	case "scale":
		if err := want(2, "scale ID N"); err != nil {
			return err
		}
		n, err := instancesArg(rest[1])
		if err != nil {
			return err
		}
		var pod map[string]any
		if _, err := c.call(ctx, "GET", podPath(rest[0]), "", &pod); err != nil {
			return err
		}
		scaling, _ := pod["scaling"].(map[string]any)
		if scaling == nil {
			scaling = map[string]any{"kind": "fixed"}
		}
		scaling["instances"] = n
		pod["scaling"] = scaling
		delete(pod, "version")
		b, err := json.Marshal(pod)
		if err != nil {
			return fmt.Errorf("encode the scaled pod: %w", err)
		}
		return c.change(ctx, "PUT", podPath(rest[0]), string(b))
	case "kill":
		if err := want(2, "kill ID INSTANCE"); err != nil {
			return err
		}
		b, err := c.call(ctx, "DELETE", podPath(rest[0])+"::instances/"+url.PathEscape(rest[1]), "", nil)
		if err != nil {
			return err
		}
		if c.jsonOut {
			return c.printJSON(b)
		}
		fmt.Fprintf(c.out, "instance %s killed; it will be replaced\n", rest[1])
		return nil
	case "rm", "remove", "delete":
		if err := want(1, "rm ID"); err != nil {
			return err
		}
		return c.change(ctx, "DELETE", podPath(rest[0]), "")
	case "help":
		usage(out)
		return nil
	}
	usage(errOut)
	return fmt.Errorf("unknown command %q; see the usage above", cmd)
}

func podPath(id string) string { return "/v2/pods/" + strings.Trim(id, "/") }

func (c *appCLI) podDeploy(ctx context.Context, stdin io.Reader) error {
	b, id, err := c.definition(stdin, "pod")
	if err != nil {
		return err
	}
	return c.change(ctx, "PUT", podPath(id), string(b))
}

type cliPodStatus struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Spec    struct {
		Scaling struct {
			Instances int `json:"instances"`
		} `json:"scaling"`
	} `json:"spec"`
	Instances []struct {
		ID            string `json:"id"`
		Status        string `json:"status"`
		AgentHostname string `json:"agentHostname"`
		Containers    []struct {
			Name       string `json:"name"`
			Status     string `json:"status"`
			Conditions []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"conditions"`
			Endpoints []struct {
				Name string `json:"name"`
				Port uint64 `json:"allocatedHostPort"`
			} `json:"endpoints"`
		} `json:"containers"`
	} `json:"instances"`
}

func (c *appCLI) podList(ctx context.Context) error {
	var sts []cliPodStatus
	b, err := c.call(ctx, "GET", "/v2/pods/::status", "", &sts)
	if err != nil {
		return err
	}
	if c.jsonOut {
		return c.printJSON(b)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tINSTANCES\tSTABLE")
	for _, s := range sts {
		stable := 0
		for _, in := range s.Instances {
			if in.Status == "STABLE" {
				stable++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", s.ID, s.Status, s.Spec.Scaling.Instances, stable)
	}
	return tw.Flush()
}

func (c *appCLI) podStatus(ctx context.Context, id string) error {
	var s cliPodStatus
	b, err := c.call(ctx, "GET", podPath(id)+"::status", "", &s)
	if err != nil {
		return err
	}
	if c.jsonOut {
		return c.printJSON(b)
	}
	fmt.Fprintf(c.out, "%s  %s", s.ID, s.Status)
	if s.Message != "" {
		fmt.Fprintf(c.out, " (%s)", s.Message)
	}
	fmt.Fprintln(c.out)
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tSTATUS\tHOST\tCONTAINER\tSTATE\tHEALTHY\tENDPOINTS")
	for _, in := range s.Instances {
		for i, ct := range in.Containers {
			inst, st, host := "", "", ""
			if i == 0 {
				inst, st, host = in.ID, in.Status, in.AgentHostname
			}
			healthy := "-"
			for _, cond := range ct.Conditions {
				if cond.Name == "healthy" {
					healthy = cond.Value
				}
			}
			var eps []string
			for _, e := range ct.Endpoints {
				eps = append(eps, fmt.Sprintf("%s:%d", e.Name, e.Port))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", inst, st, host, ct.Name, ct.Status, healthy, strings.Join(eps, ","))
		}
	}
	return tw.Flush()
}
