package main

import (
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
	"strings"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
)

const migrateUsage = `usage: flotilla migrate --from URL|FILE [--dry-run] [--skip-refused] [flags]

Reads a Marathon export — GET /v2/groups?embed=group.groups&embed=group.apps
(or GET /v2/apps, or one group or app) as a file, "-" for stdin, or the URL
of a Marathon (http://marathon:8080 reads its /v2/groups) — and prints, app
by app, what changes on the way into Flotilla: service ports kept or
assigned, health checks and how Flotilla runs them, deprecated fields
translated, fields without effect here, and the fields Flotilla refuses
with the reason (Flotilla itself decides, in a dry run of the deployment).

Without --dry-run it then deploys the whole tree as one group deployment
and waits until it has ended and every app runs. A tree with refused apps
is not deployed unless --skip-refused leaves those apps out. The export's
group replaces the group of the same id in Flotilla, so apps Flotilla runs
there that the export does not have are refused up front, not removed.

flags:
`

// migrateCLI is one invocation of "flotilla migrate".
type migrateCLI struct {
	appCLI
	from        string
	dryRun      bool
	skipRefused bool
	in          io.Reader
}

func runMigrate(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return runMigrateIO(ctx, args, os.Stdout, os.Stderr, os.Getenv, os.Stdin)
}

func runMigrateIO(ctx context.Context, args []string, out, errOut io.Writer, env func(string) string, stdin io.Reader) error {
	m := &migrateCLI{appCLI: appCLI{out: out, errOut: errOut, http: &http.Client{}}, in: stdin}
	fs := flag.NewFlagSet("flotilla migrate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	def := env("FLOTILLA_API")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	fs.StringVar(&m.from, "from", "", "the Marathon export: a file (- for stdin) or a Marathon URL")
	fs.BoolVar(&m.dryRun, "dry-run", false, "print the report and change nothing")
	fs.BoolVar(&m.skipRefused, "skip-refused", false, "deploy the apps Flotilla accepts and leave out those it refuses")
	fs.StringVar(&m.api, "api", def, "Flotilla API address (env FLOTILLA_API)")
	fs.StringVar(&m.token, "token", env("FLOTILLA_TOKEN"), "bearer token, if the API requires one (env FLOTILLA_TOKEN)")
	fs.StringVar(&m.user, "user", env("FLOTILLA_USER"), "user:password for HTTP basic auth (env FLOTILLA_USER)")
	fs.BoolVar(&m.force, "force", false, "override a deployment in progress (Marathon's ?force=true)")
	fs.DurationVar(&m.timeout, "timeout", 15*time.Minute, "how long to wait for the deployment")
	fs.DurationVar(&m.poll, "poll", time.Second, "how often to show the deployment's progress")
	usage := func(w io.Writer) {
		fmt.Fprint(w, migrateUsage)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(out)
			return nil
		}
		usage(errOut)
		return fmt.Errorf("%w; see the usage above", err)
	}
	if fs.NArg() > 0 {
		usage(errOut)
		return fmt.Errorf("unexpected argument %q; see the usage above", fs.Arg(0))
	}
	if m.from == "" {
		usage(errOut)
		return errors.New("--from is required: a Marathon export file or a Marathon URL")
	}
	if _, err := url.ParseRequestURI(m.api); err != nil || !strings.HasPrefix(m.api, "http") {
		return fmt.Errorf("--api %q is not an http(s) URL; use e.g. http://127.0.0.1:8080", m.api)
	}
	m.api = strings.TrimSuffix(m.api, "/")
	return m.run(ctx)
}

// exportApp is one app of the export: where it sits in the tree sent to
// Flotilla (its JSON pointer), its id and its definition as exported.
type exportApp struct {
	pointer string
	id      string
	raw     map[string]any
	refused []string // "path: reason", from Flotilla's dry run
}

func (m *migrateCLI) run(ctx context.Context) error {
	b, source, err := m.readExport(ctx)
	if err != nil {
		return err
	}
	tree, err := exportTree(b)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	groupID := appspec.CanonicalID(str(tree["id"]))
	apps := collectApps(tree, "", "/")
	fmt.Fprintf(m.out, "Marathon export %s: group %s, %d apps\n", source, groupID, len(apps))

	current, err := m.flotillaApps(ctx)
	if err != nil {
		return err
	}
	// The group PUT replaces the group: apps Flotilla runs under it that
	// the export lacks would go. Say so instead.
	inExport := map[string]bool{}
	for _, a := range apps {
		inExport[a.id] = true
	}
	var wouldGo []string
	for _, id := range current {
		if !inExport[id] && (groupID == "/" || strings.HasPrefix(id, groupID+"/")) {
			wouldGo = append(wouldGo, id)
		}
	}

	// Flotilla decides what it refuses, in a dry run of the deployment.
	var groupErrs []string
	skipped := map[string]bool{}
	for round := 0; ; round++ {
		for _, a := range apps {
			a.refused = nil
		}
		groupErrs = nil
		body, err := json.Marshal(tree)
		if err != nil {
			return fmt.Errorf("encode the group: %w", err)
		}
		_, err = m.call(ctx, "PUT", groupPath(groupID)+"?dryRun=true", string(body), nil)
		var ae *apiError
		if err == nil {
			break
		}
		if !errors.As(err, &ae) || (ae.Status != http.StatusUnprocessableEntity && ae.Status != http.StatusBadRequest) {
			return err
		}
		for _, d := range ae.Details {
			a := appAt(apps, d.Path)
			for _, msg := range d.Errors {
				if a == nil {
					groupErrs = append(groupErrs, d.Path+": "+msg)
					continue
				}
				a.refused = append(a.refused, strings.TrimPrefix(d.Path, a.pointer)+": "+msg)
			}
		}
		if !m.skipRefused || len(groupErrs) > 0 || round > 10 {
			break
		}
		// Leave the refused apps out and ask again.
		n := 0
		for _, a := range apps {
			if len(a.refused) > 0 && !skipped[a.id] {
				skipped[a.id] = true
				removeApp(tree, a.pointer)
				n++
			}
		}
		if n == 0 {
			break
		}
		apps = reindex(tree, apps)
	}

	refused := 0
	all := collectApps(mustTree(b), "", "/")
	for _, a := range all {
		if len(refusedOf(apps, a.id)) > 0 || skipped[a.id] {
			refused++
		}
	}
	for _, a := range all {
		m.report(a, refusedOf(apps, a.id), skipped[a.id], contains(current, a.id))
	}
	if len(groupErrs)+len(wouldGo) > 0 {
		fmt.Fprintln(m.out)
	}
	for _, e := range groupErrs {
		fmt.Fprintf(m.out, "group: refused: %s\n", e)
	}
	for _, id := range wouldGo {
		fmt.Fprintf(m.out, "%s: runs in Flotilla but is not in the export; deploying the group would remove it\n", id)
	}
	fmt.Fprintf(m.out, "\n%d apps: %d to deploy, %d refused\n", len(all), len(all)-refused, refused)

	switch {
	case len(groupErrs) > 0:
		return errors.New("the group is refused as a whole (see above); nothing was deployed")
	case refused > 0 && !m.skipRefused:
		return fmt.Errorf("%d apps are refused (see above); change them, or pass --skip-refused to leave them out; nothing was deployed", refused)
	case len(wouldGo) > 0:
		return fmt.Errorf("%d apps run in Flotilla under %s and are not in the export (see above); remove them first or export them too; nothing was deployed", len(wouldGo), groupID)
	case m.dryRun:
		fmt.Fprintln(m.out, "dry run: nothing was changed")
		return nil
	case len(all) == refused:
		return errors.New("no app left to deploy")
	}
	body, err := json.Marshal(tree)
	if err != nil {
		return fmt.Errorf("encode the group: %w", err)
	}
	if err := m.change(ctx, "PUT", groupPath(groupID), string(body)); err != nil {
		return err
	}
	return m.checkRunning(ctx, reindex(tree, apps))
}

// readExport reads --from: a file, stdin, or a Marathon URL (its
// /v2/groups with apps embedded when the URL has no path).
func (m *migrateCLI) readExport(ctx context.Context) ([]byte, string, error) {
	if m.from == "-" {
		b, err := io.ReadAll(io.LimitReader(m.in, 256<<20))
		return b, "(stdin)", err
	}
	if !strings.HasPrefix(m.from, "http://") && !strings.HasPrefix(m.from, "https://") {
		b, err := os.ReadFile(m.from)
		return b, m.from, err
	}
	u, err := url.Parse(m.from)
	if err != nil {
		return nil, "", fmt.Errorf("--from %q: %w", m.from, err)
	}
	if strings.Trim(u.Path, "/") == "" {
		u.Path = "/v2/groups"
		u.RawQuery = "embed=group.groups&embed=group.apps"
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", u.String(), nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/json")
	res, err := m.http.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("read the Marathon export: %w", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 256<<20))
	if err != nil {
		return nil, "", fmt.Errorf("read the Marathon export from %s: %w", u, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s answered %d: %s", u, res.StatusCode, bytes.TrimSpace(b))
	}
	return b, u.String(), nil
}

// exportTree makes a group of any export: a group as it is, a GET
// /v2/apps answer ({"apps": […]}) or one app ({"app": …} or an app) as
// the root group holding them.
func exportTree(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var top map[string]any
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("not a Marathon export (a JSON object): %w", err)
	}
	_, hasID := top["id"]
	_, hasApps := top["apps"]
	_, hasGroups := top["groups"]
	switch {
	case top["app"] != nil && len(top) == 1:
		return nestApps([]any{top["app"]}), nil
	case hasApps && !hasID:
		return nestApps(list(top["apps"])), nil
	case hasGroups || hasApps:
		if !hasID {
			top["id"] = "/"
		}
		return top, nil
	case hasID:
		return nestApps([]any{top}), nil
	}
	return nil, errors.New("not a Marathon export: want a group, {\"apps\": […]} or an app")
}

// nestApps builds the root group holding apps of a GET /v2/apps answer,
// each in the group its id names (/prod/shop/web in /prod/shop), as
// Marathon's tree has them.
func nestApps(apps []any) map[string]any {
	root := map[string]any{"id": "/"}
	groups := map[string]map[string]any{"/": root}
	var group func(id string) map[string]any
	group = func(id string) map[string]any {
		if g, ok := groups[id]; ok {
			return g
		}
		g := map[string]any{"id": id}
		groups[id] = g
		parent := group(appspec.ParentID(id))
		parent["groups"] = append(list(parent["groups"]), g)
		return g
	}
	for _, a := range apps {
		am, _ := a.(map[string]any)
		g := group(appspec.ParentID(appspec.CanonicalID(str(am["id"]))))
		g["apps"] = append(list(g["apps"]), a)
	}
	return root
}

func mustTree(b []byte) map[string]any {
	t, _ := exportTree(b) // read once already
	return t
}

// collectApps lists the apps of a group tree with their JSON pointers and
// absolute ids (relative ids resolve against their group, as Marathon's).
func collectApps(g map[string]any, pointer, parent string) []*exportApp {
	id := appspec.ResolveID(parent, str(g["id"]))
	if pointer == "" {
		id = appspec.CanonicalID(str(g["id"]))
	}
	var out []*exportApp
	for i, a := range list(g["apps"]) {
		if am, ok := a.(map[string]any); ok {
			out = append(out, &exportApp{pointer: fmt.Sprintf("%s/apps/%d", pointer, i), id: appspec.ResolveID(id, str(am["id"])), raw: am})
		}
	}
	for i, sg := range list(g["groups"]) {
		if sm, ok := sg.(map[string]any); ok {
			out = append(out, collectApps(sm, fmt.Sprintf("%s/groups/%d", pointer, i), id)...)
		}
	}
	return out
}

// reindex gives the apps left in the tree their new pointers.
func reindex(tree map[string]any, apps []*exportApp) []*exportApp {
	fresh := collectApps(tree, "", "/")
	refused := map[string][]string{}
	for _, a := range apps {
		refused[a.id] = a.refused
	}
	for _, a := range fresh {
		a.refused = refused[a.id]
	}
	return fresh
}

// removeApp takes the app at pointer (/groups/0/apps/2) out of the tree.
func removeApp(tree map[string]any, pointer string) {
	parts := strings.Split(strings.TrimPrefix(pointer, "/"), "/")
	g := tree
	for i := 0; i+1 < len(parts); i += 2 {
		var idx int
		fmt.Sscan(parts[i+1], &idx)
		l := list(g[parts[i]])
		if idx >= len(l) {
			return
		}
		if parts[i] == "apps" && i+2 == len(parts) {
			g["apps"] = append(append([]any{}, l[:idx]...), l[idx+1:]...)
			return
		}
		next, ok := l[idx].(map[string]any)
		if !ok {
			return
		}
		g = next
	}
}

// appAt is the app a detail's path (/groups/0/apps/1/cpus) is about.
func appAt(apps []*exportApp, path string) *exportApp {
	for _, a := range apps {
		if path == a.pointer || strings.HasPrefix(path, a.pointer+"/") {
			return a
		}
	}
	return nil
}

func refusedOf(apps []*exportApp, id string) []string {
	for _, a := range apps {
		if a.id == id {
			return a.refused
		}
	}
	return nil
}

func groupPath(id string) string {
	if id == "/" {
		return "/v2/groups/"
	}
	return "/v2/groups" + id
}

func (m *migrateCLI) flotillaApps(ctx context.Context) ([]string, error) {
	var res struct {
		Apps []struct {
			ID string `json:"id"`
		} `json:"apps"`
	}
	if _, err := m.call(ctx, "GET", "/v2/apps", "", &res); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(res.Apps))
	for _, a := range res.Apps {
		ids = append(ids, a.ID)
	}
	sort.Strings(ids)
	return ids, nil
}

// checkRunning waits until every migrated app runs its instances (the
// deployment has ended, so this is quick unless tasks fail).
func (m *migrateCLI) checkRunning(ctx context.Context, apps []*exportApp) error {
	deadline := time.Now().Add(time.Minute)
	for {
		var notRunning []string
		for _, a := range apps {
			var res struct{ App cliApp }
			if _, err := m.call(ctx, "GET", appPath(a.id), "", &res); err != nil {
				return err
			}
			if res.App.TasksRunning < res.App.Instances {
				line := fmt.Sprintf("%s: %d of %d instances running", a.id, res.App.TasksRunning, res.App.Instances)
				if f := res.App.LastTaskFailure; f != nil {
					line += fmt.Sprintf(" (last failure %s: %s)", f.State, f.Message)
				}
				notRunning = append(notRunning, line)
			}
		}
		if len(notRunning) == 0 {
			fmt.Fprintf(m.out, "migrated: %d apps running\n", len(apps))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the deployment ended but not every app runs:\n  %s", strings.Join(notRunning, "\n  "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(m.poll):
		}
	}
}

func contains(list []string, s string) bool {
	i := sort.SearchStrings(list, s)
	return i < len(list) && list[i] == s
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}
