package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const appUsage = `usage: flotilla app [flags] <command> [args]

commands:
  list                      apps with their instances, running and healthy tasks
  show ID                   one app: spec summary, deployment, tasks
  deploy -f app.json        create or replace an app (Marathon app JSON; -f - reads stdin)
  scale ID N                set an app's instances
  restart ID                replace every task of an app
  rm ID                     remove an app and kill its tasks
  tasks ID                  an app's tasks
  deployments               deployments in progress
  logs ID                   a task's stdout (--stderr for stderr); without --task every
                            instance's, each line prefixed with its task id; -f follows
                            (every instance also picks up those that start later),
                            --tail N starts N lines before the end

deploy, scale, restart and rm follow the deployment until it ends (step by
step) unless --detach is given; they exit non-zero if it fails.

flags (before or after the command):
`

// appCLI is one invocation of "flotilla app".
type appCLI struct {
	api, token, user string
	jsonOut, detach  bool
	force            bool
	file             string
	timeout          time.Duration
	poll             time.Duration
	// logs
	task        string
	stderr      bool
	followLogs  bool
	tail        int
	out, errOut io.Writer
	http        *http.Client
	// deploymentID is the last answer's Marathon-Deployment-Id header
	// (pod writes answer with the pod, the id only there).
	deploymentID string
}

func (c *appCLI) flags(name string, env func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	def := env("FLOTILLA_API")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	fs.StringVar(&c.api, "api", def, "Flotilla API address (env FLOTILLA_API)")
	fs.StringVar(&c.token, "token", env("FLOTILLA_TOKEN"), "bearer token, if the API requires one (env FLOTILLA_TOKEN)")
	fs.StringVar(&c.user, "user", env("FLOTILLA_USER"), "user:password for HTTP basic auth (env FLOTILLA_USER)")
	fs.BoolVar(&c.jsonOut, "json", false, "print the API's JSON instead of tables")
	fs.BoolVar(&c.detach, "detach", false, "do not follow the deployment")
	fs.BoolVar(&c.force, "force", false, "override a deployment in progress (Marathon's ?force=true)")
	fs.StringVar(&c.file, "f", "", "app definition file for deploy (- for stdin)")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Minute, "how long to follow a deployment")
	fs.DurationVar(&c.poll, "poll", time.Second, "how often to show a deployment's progress")
	fs.StringVar(&c.task, "task", "", "logs: this task only (default: every instance, prefixed)")
	fs.BoolVar(&c.stderr, "stderr", false, "logs: the tasks' stderr instead of stdout")
	fs.BoolVar(&c.followLogs, "follow", false, "logs: keep following what the tasks write (-f after 'logs')")
	fs.IntVar(&c.tail, "tail", -1, "logs: start this many lines before the end (default: from the start)")
	return fs
}

// runApp is "flotilla app …": a client of the Marathon-compatible API.
func runApp(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return runAppIO(ctx, args, os.Stdout, os.Stderr, os.Getenv, os.Stdin)
}

func runAppIO(ctx context.Context, args []string, out, errOut io.Writer, env func(string) string, stdin io.Reader) error {
	c := &appCLI{out: out, errOut: errOut, http: &http.Client{}}
	fs := c.flags("flotilla app", env)
	args = logsFollowFlag(args)
	pos, err := c.parse(fs, args, func() { printAppUsage(errOut, fs) })
	if err != nil || pos == nil {
		return err
	}
	cmd, rest := pos[0], pos[1:]
	want := func(n int, usage string) error {
		if len(rest) != n {
			return fmt.Errorf("usage: flotilla app %s", usage)
		}
		return nil
	}
	switch cmd {
	case "list", "ls":
		if err := want(0, "list"); err != nil {
			return err
		}
		return c.list(ctx)
	case "show":
		if err := want(1, "show ID"); err != nil {
			return err
		}
		return c.show(ctx, rest[0])
	case "deploy":
		if err := want(0, "deploy -f app.json"); err != nil {
			return err
		}
		return c.deploy(ctx, stdin)
	case "scale":
		if err := want(2, "scale ID N"); err != nil {
			return err
		}
		n, err := instancesArg(rest[1])
		if err != nil {
			return err
		}
		return c.change(ctx, "PUT", appPath(rest[0]), fmt.Sprintf(`{"instances": %d}`, n))
	case "restart":
		if err := want(1, "restart ID"); err != nil {
			return err
		}
		return c.change(ctx, "POST", appPath(rest[0])+"/restart", "")
	case "rm", "remove", "delete":
		if err := want(1, "rm ID"); err != nil {
			return err
		}
		return c.change(ctx, "DELETE", appPath(rest[0]), "")
	case "tasks":
		if err := want(1, "tasks ID"); err != nil {
			return err
		}
		return c.tasks(ctx, rest[0])
	case "deployments":
		if err := want(0, "deployments"); err != nil {
			return err
		}
		return c.deployments(ctx)
	case "logs", "log":
		if err := want(1, "logs ID [--task T] [--stderr] [-f] [--tail N]"); err != nil {
			return err
		}
		return c.logs(ctx, rest[0])
	case "help":
		printAppUsage(out, fs)
		return nil
	}
	printAppUsage(errOut, fs)
	return fmt.Errorf("unknown command %q; see the usage above", cmd)
}

// parse reads flags and positional arguments, in any order (flags may
// come before or after the command and its arguments), and checks --api.
// usage prints the command's usage; nil pos and nil error mean -h was
// answered.
func (c *appCLI) parse(fs *flag.FlagSet, args []string, usage func()) (pos []string, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			usage()
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil
			}
			return nil, fmt.Errorf("%w; see the usage above", err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) == 0 {
		usage()
		return nil, errors.New("no command given; see the usage above")
	}
	if _, err := url.ParseRequestURI(c.api); err != nil || !strings.HasPrefix(c.api, "http") {
		return nil, fmt.Errorf("--api %q is not an http(s) URL; use e.g. http://127.0.0.1:8080", c.api)
	}
	c.api = strings.TrimSuffix(c.api, "/")
	return pos, nil
}

func printAppUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, appUsage)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func appPath(id string) string { return "/v2/apps/" + strings.Trim(id, "/") }

// apiError is the API's error body, shown path by path.
type apiError struct {
	Status  int
	Message string `json:"message"`
	Details []struct {
		Path   string   `json:"path"`
		Errors []string `json:"errors"`
	} `json:"details"`
	Deployments []struct {
		ID string `json:"id"`
	} `json:"deployments"`
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the API answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	for _, d := range e.Details {
		for _, msg := range d.Errors {
			fmt.Fprintf(&b, "\n  %s: %s", d.Path, msg)
		}
	}
	if e.Status == http.StatusConflict && len(e.Deployments) > 0 {
		b.WriteString("\n  (wait for it with 'flotilla app deployments', or override with --force)")
	}
	if e.Status == http.StatusUnauthorized {
		b.WriteString("\n  (pass --token or --user, or set FLOTILLA_TOKEN / FLOTILLA_USER)")
	}
	return b.String()
}

// call does one request; out, when set, receives the JSON answer. The
// raw body is returned for --json.
func (c *appCLI) call(ctx context.Context, method, path, body string, out any) ([]byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.api+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	c.auth(req)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (is Flotilla running at %s? set --api or FLOTILLA_API)", method, path, err, c.api)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	c.deploymentID = res.Header.Get("Marathon-Deployment-Id")
	if res.StatusCode >= 300 {
		ae := &apiError{Status: res.StatusCode}
		if json.Unmarshal(b, ae) != nil || ae.Message == "" {
			ae.Message = strings.TrimSpace(string(b))
		}
		return nil, ae
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, path, err)
		}
	}
	return b, nil
}

func (c *appCLI) auth(req *http.Request) {
	switch {
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.user != "":
		u, p, _ := strings.Cut(c.user, ":")
		req.SetBasicAuth(u, p)
	}
}

func (c *appCLI) printJSON(b []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		_, err = c.out.Write(b)
		return err
	}
	buf.WriteByte('\n')
	_, err := c.out.Write(buf.Bytes())
	return err
}

type cliTask struct {
	ID                 string   `json:"id"`
	Host               string   `json:"host"`
	Ports              []uint64 `json:"ports"`
	State              string   `json:"state"`
	StartedAt          *string  `json:"startedAt"`
	Version            string   `json:"version"`
	HealthCheckResults []struct {
		Alive bool `json:"alive"`
	} `json:"healthCheckResults"`
}

type cliApp struct {
	ID        string  `json:"id"`
	Cmd       string  `json:"cmd"`
	Instances int     `json:"instances"`
	CPUs      float64 `json:"cpus"`
	Mem       float64 `json:"mem"`
	Container *struct {
		Docker *struct {
			Image string `json:"image"`
		} `json:"docker"`
	} `json:"container"`
	Version        string `json:"version"`
	TasksRunning   int    `json:"tasksRunning"`
	TasksStaged    int    `json:"tasksStaged"`
	TasksHealthy   int    `json:"tasksHealthy"`
	TasksUnhealthy int    `json:"tasksUnhealthy"`
	Deployments    []struct {
		ID string `json:"id"`
	} `json:"deployments"`
	HealthChecks    []json.RawMessage `json:"healthChecks"`
	Tasks           []cliTask         `json:"tasks"`
	LastTaskFailure *struct {
		TaskID    string `json:"taskId"`
		State     string `json:"state"`
		Message   string `json:"message"`
		Timestamp string `json:"timestamp"`
	} `json:"lastTaskFailure"`
}

func (a cliApp) what() string {
	if a.Container != nil && a.Container.Docker != nil && a.Container.Docker.Image != "" {
		return a.Container.Docker.Image
	}
	if len(a.Cmd) > 40 {
		return a.Cmd[:37] + "..."
	}
	return a.Cmd
}

func (a cliApp) deployment() string {
	if len(a.Deployments) == 0 {
		return "-"
	}
	return a.Deployments[0].ID
}

func (a cliApp) healthy() string {
	if len(a.HealthChecks) == 0 {
		return "-"
	}
	return strconv.Itoa(a.TasksHealthy)
}

func (c *appCLI) list(ctx context.Context) error {
	var res struct {
		Apps []cliApp `json:"apps"`
	}
	b, err := c.call(ctx, "GET", "/v2/apps", "", &res)
	if err != nil {
		return err
	}
	if c.jsonOut {
		return c.printJSON(b)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tINSTANCES\tRUNNING\tSTAGED\tHEALTHY\tCPUS\tMEM\tIMAGE/CMD\tDEPLOYMENT")
	for _, a := range res.Apps {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%g\t%g\t%s\t%s\n", a.ID, a.Instances, a.TasksRunning, a.TasksStaged, a.healthy(), a.CPUs, a.Mem, a.what(), a.deployment())
	}
	return tw.Flush()
}

func (c *appCLI) show(ctx context.Context, id string) error {
	var res struct {
		App cliApp `json:"app"`
	}
	b, err := c.call(ctx, "GET", appPath(id), "", &res)
	if err != nil {
		return err
	}
	if c.jsonOut {
		return c.printJSON(b)
	}
	a := res.App
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id:\t%s\n", a.ID)
	fmt.Fprintf(tw, "version:\t%s\n", a.Version)
	fmt.Fprintf(tw, "image/cmd:\t%s\n", a.what())
	fmt.Fprintf(tw, "resources:\t%g cpus, %g MiB\n", a.CPUs, a.Mem)
	fmt.Fprintf(tw, "instances:\t%d (running %d, staged %d, healthy %s, unhealthy %d)\n", a.Instances, a.TasksRunning, a.TasksStaged, a.healthy(), a.TasksUnhealthy)
	fmt.Fprintf(tw, "deployment:\t%s\n", a.deployment())
	if f := a.LastTaskFailure; f != nil {
		fmt.Fprintf(tw, "last failure:\t%s %s at %s: %s\n", f.TaskID, f.State, f.Timestamp, f.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.out)
	return c.printTasks(a.Tasks)
}

func (c *appCLI) tasks(ctx context.Context, id string) error {
	var res struct {
		Tasks []cliTask `json:"tasks"`
	}
	b, err := c.call(ctx, "GET", appPath(id)+"/tasks", "", &res)
	if err != nil {
		return err
	}
	if c.jsonOut {
		return c.printJSON(b)
	}
	return c.printTasks(res.Tasks)
}

func (c *appCLI) printTasks(ts []cliTask) error {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tHOST\tPORTS\tSTATE\tHEALTH\tSTARTED\tVERSION")
	for _, t := range ts {
		ports := make([]string, len(t.Ports))
		for i, p := range t.Ports {
			ports[i] = strconv.FormatUint(p, 10)
		}
		health := "-"
		if len(t.HealthCheckResults) > 0 {
			// One entry per check with a result: healthy only if all pass.
			health = "healthy"
			for _, r := range t.HealthCheckResults {
				if !r.Alive {
					health = "unhealthy"
				}
			}
		}
		started := "-"
		if t.StartedAt != nil {
			started = *t.StartedAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Host, strings.Join(ports, ","), t.State, health, started, t.Version)
	}
	return tw.Flush()
}

type cliDeployment struct {
	ID           string   `json:"id"`
	Version      string   `json:"version"`
	AffectedApps []string `json:"affectedApps"`
	Steps        []struct {
		Actions []struct {
			Action string `json:"action"`
			App    string `json:"app"`
		} `json:"actions"`
	} `json:"steps"`
	CurrentStep      int    `json:"currentStep"`
	TotalSteps       int    `json:"totalSteps"`
	ProgressDeadline string `json:"progressDeadline"`
	Progress         string `json:"progress"`
	RollbackOf       string `json:"rollbackOf"`
}

func (d cliDeployment) action() string {
	var as []string
	for _, s := range d.Steps {
		for _, a := range s.Actions {
			as = append(as, a.Action+" "+a.App)
		}
	}
	return strings.Join(as, ", ")
}

func (c *appCLI) listDeployments(ctx context.Context) ([]cliDeployment, []byte, error) {
	var ds []cliDeployment
	b, err := c.call(ctx, "GET", "/v2/deployments", "", &ds)
	return ds, b, err
}

func (c *appCLI) deployments(ctx context.Context) error {
	ds, b, err := c.listDeployments(ctx)
	if err != nil {
		return err
	}
	if c.jsonOut {
		return c.printJSON(b)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].Version < ds[j].Version })
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACTION\tVERSION\tSTEP\tPROGRESS\tDEADLINE")
	for _, d := range ds {
		action := d.action()
		if d.RollbackOf != "" {
			action += " (rollback of " + d.RollbackOf + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", d.ID, action, d.Version, d.CurrentStep, d.TotalSteps, d.Progress, d.ProgressDeadline)
	}
	return tw.Flush()
}

func (c *appCLI) deploy(ctx context.Context, stdin io.Reader) error {
	b, id, err := c.definition(stdin, "app")
	if err != nil {
		return err
	}
	// partialUpdate=false: the file is the whole app, as with a create.
	return c.change(ctx, "PUT", appPath(id)+"?partialUpdate=false", string(b))
}

// definition reads the --f file (- for stdin) of an app or pod
// definition and its id.
func (c *appCLI) definition(stdin io.Reader, what string) ([]byte, string, error) {
	if c.file == "" {
		return nil, "", fmt.Errorf("deploy needs the %[1]s definition: flotilla %[1]s deploy -f %[1]s.json (or -f - for stdin)", what)
	}
	var (
		b   []byte
		err error
	)
	if c.file == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 2<<20))
	} else {
		b, err = os.ReadFile(c.file)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read the %s definition: %w", what, err)
	}
	var probe struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, "", fmt.Errorf("%s is not JSON: %w; the API's validation explains more once it parses", c.file, err)
	}
	if strings.Trim(probe.ID, "/ ") == "" {
		return nil, "", fmt.Errorf("%s has no \"id\"; give the %s an id such as /prod/shop/web", c.file, what)
	}
	return b, probe.ID, nil
}

// change makes one change and follows its deployment unless --detach.
func (c *appCLI) change(ctx context.Context, method, path, body string) error {
	if c.force {
		if strings.Contains(path, "?") {
			path += "&force=true"
		} else {
			path += "?force=true"
		}
	}
	var events <-chan cliEvent
	if !c.detach && !c.jsonOut {
		// Attach before the change so that no event of it is missed.
		ch, stop, err := c.streamDeployments(ctx)
		if err != nil {
			fmt.Fprintf(c.errOut, "warning: cannot follow events (%v); polling /v2/deployments instead\n", err)
		} else {
			defer stop()
			events = ch
		}
	}
	var res struct {
		Version      string `json:"version"`
		DeploymentID string `json:"deploymentId"`
	}
	b, err := c.call(ctx, method, path, body, &res)
	if err != nil {
		return err
	}
	if c.jsonOut {
		if len(b) == 0 {
			return nil // a pod's DELETE answers 202 without a body
		}
		return c.printJSON(b)
	}
	if res.DeploymentID == "" {
		// Pod writes answer with the pod; the id is in the header.
		res.DeploymentID = c.deploymentID
	}
	if res.Version != "" {
		fmt.Fprintf(c.out, "deployment %s started (version %s)\n", res.DeploymentID, res.Version)
	} else {
		fmt.Fprintf(c.out, "deployment %s started\n", res.DeploymentID) // a pod's DELETE names no version
	}
	if c.detach || res.DeploymentID == "" {
		return nil
	}
	return c.follow(ctx, res.DeploymentID, events)
}

type cliEvent struct {
	Type   string
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// streamDeployments reads deployment events from /v2/events.
func (c *appCLI) streamDeployments(ctx context.Context) (<-chan cliEvent, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, "GET", c.api+"/v2/events?event_type=deployment_success&event_type=deployment_failed&event_type=deployment_info", nil)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	c.auth(req)
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.http.Do(req)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		cancel()
		return nil, nil, fmt.Errorf("GET /v2/events answered %s", res.Status)
	}
	ch := make(chan cliEvent, 64)
	go func() {
		defer close(ch)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		typ := ""
		for sc.Scan() {
			line := sc.Text()
			if t, ok := strings.CutPrefix(line, "event: "); ok {
				typ = t
				continue
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			var ev cliEvent
			if json.Unmarshal([]byte(data), &ev) != nil {
				continue
			}
			ev.Type = typ
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, cancel, nil
}

// follow shows a deployment's progress until it ends. With events, the
// end and its reason come from deployment_success/deployment_failed; a
// failure that rolled back names the rollback deployment, which is then
// followed too. Without events, the deployment's disappearance from
// /v2/deployments is taken as its end.
func (c *appCLI) follow(ctx context.Context, id string, events <-chan cliEvent) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	tick := time.NewTicker(c.poll)
	defer tick.Stop()
	last := ""
	show := func() (found bool) {
		ds, _, err := c.listDeployments(ctx)
		if err != nil {
			fmt.Fprintf(c.errOut, "warning: %v\n", err)
			return true
		}
		for _, d := range ds {
			if d.ID != id {
				continue
			}
			line := fmt.Sprintf("  step %d/%d %s: %s", d.CurrentStep, d.TotalSteps, d.action(), d.Progress)
			if line != last {
				fmt.Fprintln(c.out, line)
				last = line
			}
			return true
		}
		return false
	}
	show()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following deployment %s: %w (it goes on; see 'flotilla app deployments')", id, ctx.Err())
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.ID != id {
				continue
			}
			switch ev.Type {
			case "deployment_success":
				fmt.Fprintf(c.out, "deployment %s succeeded\n", id)
				return nil
			case "deployment_failed":
				return fmt.Errorf("deployment %s failed: %s", id, ev.Reason)
			}
		case <-tick.C:
			if !show() && events == nil {
				fmt.Fprintf(c.out, "deployment %s finished\n", id)
				return nil
			}
		}
	}
}

// instancesArg reads the N of "scale ID N" (apps and pods).
func instancesArg(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("scale: %q is not a number of instances (0 or more)", s)
	}
	return n, nil
}
