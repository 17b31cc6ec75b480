package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	vault "github.com/hashicorp/vault/api"

	"github.com/flotilla-sched/flotilla/internal/testbed"
)

// browser is the test bed's Chromium with the screenshots of docs/img.
type browser struct{ *testbed.Browser }

func newBrowser(t *testing.T, width, height int) *browser {
	return &browser{testbed.NewBrowser(t, width, height)}
}

func (b *browser) run(t *testing.T, what string, actions ...chromedp.Action) {
	t.Helper()
	b.Run(t, what, actions...)
}

func (b *browser) text(t *testing.T, sel string) string { t.Helper(); return b.Text(t, sel) }

// count is the number of elements sel matches now.
func (b *browser) count(t *testing.T, sel string) int {
	t.Helper()
	var n int
	b.run(t, "count "+sel, chromedp.Evaluate(fmt.Sprintf(`document.querySelectorAll(%q).length`, sel), &n))
	return n
}

// attr is the attribute name of the first element sel matches ("" if none).
func (b *browser) attr(t *testing.T, sel, name string) string {
	t.Helper()
	var v string
	b.run(t, "read "+name+" of "+sel, chromedp.Evaluate(fmt.Sprintf(`(document.querySelector(%q) || { getAttribute: () => '' }).getAttribute(%q) || ''`, sel, name), &v))
	return v
}

func (b *browser) waitText(t *testing.T, d time.Duration, sel, want string) {
	t.Helper()
	b.WaitText(t, d, sel, want)
}

func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	var png []byte
	b.run(t, "screenshot "+name, chromedp.CaptureScreenshot(&png))
	// The screenshots in docs/ are these, refreshed by a run with
	// FLOTILLA_UI_SCREENSHOTS=1; other runs leave the tree alone.
	dir := t.TempDir()
	if os.Getenv("FLOTILLA_UI_SCREENSHOTS") == "1" {
		dir = filepath.Join("..", "..", "docs", "img")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestUIBrowser drives the web UI in Debian's headless Chromium against
// flotilla dev with real Docker containers: deploy from the edit page and
// watch the deployment finish without a reload, scale to 5 and see 5
// healthy, read a task's stdout, see a failing app's stderr and why it
// waits; the page never requests anything outside the server.
func TestUIBrowser(t *testing.T) {
	t.Parallel()
	testbed.DockerSocket(t)
	env := startDev(t, devOpts{executor: "docker", upstream: fakeUpstream(t), ports: [2]uint64{31900, 31999}})
	b := newBrowser(t, 1280, 800)

	b.run(t, "open the new-app page", chromedp.Navigate(env.api+"/#/new"), chromedp.WaitVisible("#spec", chromedp.ByQuery),
		chromedp.Evaluate(`window.__noReload = 1`, nil))
	spec := `{"id":"/web","instances":2,"cpus":0.05,"mem":32,
	  "container":{"type":"DOCKER","docker":{"image":"flotilla/testapp:dev","network":"HOST"}},
	  "portDefinitions":[{"port":0}],
	  "healthChecks":[{"protocol":"MESOS_HTTP","path":"/health","portIndex":0,"gracePeriodSeconds":10,"intervalSeconds":1,"timeoutSeconds":2,"maxConsecutiveFailures":3,"delaySeconds":0}],
	  "exposure":{"mode":"external","vhosts":["web.example.com"]}}`
	// A bad definition first: the API's 422 details show inline.
	b.run(t, "submit an invalid app", chromedp.SetValue("#spec", `{"id":"/web","instances":-1,"cpus":0.1,"mem":32,"cmd":"x"}`, chromedp.ByQuery),
		chromedp.Click("#submit", chromedp.ByQuery))
	b.waitText(t, 20*time.Second, "#edit-errors", "/instances")
	b.run(t, "deploy from the edit page", chromedp.SetValue("#spec", spec, chromedp.ByQuery), chromedp.Click("#submit", chromedp.ByQuery))
	b.waitText(t, 20*time.Second, "h1", "/web")
	b.waitText(t, 120*time.Second, "#instances", "2 healthy of 2")
	b.waitText(t, 60*time.Second, "#deployment", "No deployment in progress")

	b.run(t, "scale to 5", chromedp.SetValue("#scale-n", "5", chromedp.ByQuery), chromedp.Click("#scale", chromedp.ByQuery))
	b.waitText(t, 120*time.Second, "#instances", "5 healthy of 5")
	b.waitText(t, 60*time.Second, "#tasks", "healthy")
	// Its DNS records (Mesos-DNS's HTTP API) and the gateway's routes (the
	// discovery feed's view): external, its vhost, five backends.
	b.waitText(t, 30*time.Second, "#discovery", "SRV")
	b.waitText(t, 30*time.Second, "#routes", "internal and external listeners")
	b.waitText(t, 30*time.Second, "#routes", "web.example.com")
	waitFor(t, 30*time.Second, "five backends on the page's gateway routes", func() bool {
		var n int
		b.run(t, "count the backends", chromedp.Evaluate(`document.querySelectorAll('#routes tbody tr').length`, &n))
		return n == 5
	})
	b.screenshot(t, "ui-app.png")

	// An autoscaled app: its decisions as a plot.
	env.deploy(t, `{"id":"/scaled","instances":1,"cpus":0.05,"mem":16,"cmd":"sleep 100000",
	  "container":{"type":"DOCKER","docker":{"image":"flotilla/busybox:dev","network":"HOST"}},
	  "autoscale":{"min":1,"max":2,"metric":"cpu","target":0.5,"intervalSeconds":1}}`)
	b.run(t, "open /scaled", chromedp.Navigate(env.api+"/#/app/scaled"))
	// A steady app's identical decisions are folded into one entry: its
	// instances line runs from that decision to now.
	var points int
	waitFor(t, 90*time.Second, "the autoscale plot's instances line", func() bool {
		b.run(t, "read the plot", chromedp.Evaluate(`(() => { const p = document.querySelector('#autoscale-plot polyline.current');
			return p ? p.getAttribute('points').split(' ').length : 0; })()`, &points))
		return points >= 2
	})
	b.run(t, "scroll to the plot", chromedp.ScrollIntoView("#autoscale-plot", chromedp.ByQuery))
	b.screenshot(t, "ui-autoscale.png")

	// A task's stdout: an app that prints.
	env.deploy(t, `{"id":"/printer","instances":1,"cpus":0.05,"mem":16,"cmd":"while true; do echo printed-by-$MESOS_TASK_ID; sleep 1; done",
	  "container":{"type":"DOCKER","docker":{"image":"flotilla/busybox:dev","network":"HOST"}}}`)
	b.run(t, "open /printer", chromedp.Navigate(env.api+"/#/app/printer"))
	b.waitText(t, 60*time.Second, "#tasks", "TASK_RUNNING")
	b.run(t, "follow its stdout", chromedp.Click("#log-follow", chromedp.ByQuery), chromedp.Click("#log-show", chromedp.ByQuery))
	b.waitText(t, 60*time.Second, "#log", "printed-by-printer.")
	b.screenshot(t, "ui-logs.png")

	// A failing app: its stderr and why it waits.
	env.deploy(t, `{"id":"/crasher","instances":1,"cpus":0.05,"mem":16,"cmd":"echo 'fatal: DB_URL is not set' >&2; exit 1",
	  "container":{"type":"DOCKER","docker":{"image":"flotilla/busybox:dev","network":"HOST"}}}`)
	b.run(t, "open /crasher", chromedp.Navigate(env.api+"/#/app/crasher"))
	b.waitText(t, 120*time.Second, "#last-failure", "fatal: DB_URL is not set")
	b.waitText(t, 60*time.Second, "#queue", "Waiting")
	b.screenshot(t, "ui-failing.png")

	// A group: the list is a tree, /prod open (top level), /prod/shop
	// closed with its apps' totals, opened and entered by keyboard.
	if code, body := env.do(t, "POST", "/v2/groups", `{"id":"/prod/shop","apps":[
	  {"id":"web","instances":2,"cpus":0.05,"mem":16,"cmd":"sleep 100000","container":{"type":"DOCKER","docker":{"image":"flotilla/busybox:dev","network":"HOST"}}},
	  {"id":"api","instances":1,"cpus":0.05,"mem":16,"cmd":"sleep 100000","container":{"type":"DOCKER","docker":{"image":"flotilla/busybox:dev","network":"HOST"}}}]}`); code != http.StatusCreated {
		t.Fatalf("POST /v2/groups: %d %s", code, body)
	}
	b.run(t, "open the apps list", chromedp.Navigate(env.api+"/#/"))
	b.waitText(t, 20*time.Second, ".vlist", "/web")
	if s := b.text(t, ".vlist"); !strings.Contains(s, "web.flotilla.mesos") || !strings.Contains(s, "external") || !strings.Contains(s, "5/5") {
		t.Errorf("the apps list reads %q, want /web with 5/5, external and its DNS name", s)
	}
	b.waitText(t, 90*time.Second, `[data-group="/prod/shop"]`, "3/3")
	if n := b.count(t, `[data-app^="/prod/shop/"]`); n != 0 {
		t.Fatalf("/prod/shop is closed, yet %d of its apps are listed", n)
	}
	b.run(t, "expand /prod/shop by keyboard", chromedp.Focus(`[data-group="/prod"]`, chromedp.ByQuery),
		chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowRight))
	b.waitText(t, 10*time.Second, `[data-app="/prod/shop/web"]`, "2/2")
	if e := b.attr(t, `[data-group="/prod/shop"]`, "aria-expanded"); e != "true" {
		t.Fatalf("/prod/shop's aria-expanded is %q after ArrowRight, want true", e)
	}
	b.screenshot(t, "ui-apps.png")
	// Down to /prod/shop/web (its apps come after its groups, sorted),
	// then Enter opens it.
	waitFor(t, 10*time.Second, "the keyboard focus on /prod/shop/web", func() bool {
		var focused string
		b.run(t, "read the focused row", chromedp.Evaluate(`document.activeElement.dataset.app || document.activeElement.dataset.group || ''`, &focused))
		if focused == "/prod/shop/web" {
			return true
		}
		b.run(t, "press ArrowDown", chromedp.KeyEvent(kb.ArrowDown))
		return false
	})
	b.run(t, "open /prod/shop/web with Enter", chromedp.KeyEvent(kb.Enter))
	b.waitText(t, 20*time.Second, "h1", "/prod/shop/web")
	b.waitText(t, 60*time.Second, "#instances", "2 healthy of 2")
	b.run(t, "open the cluster page", chromedp.Navigate(env.api+"/#/cluster"))
	b.waitText(t, 20*time.Second, "#leader", "127.0.0.1")
	// The agents with their resources, from the master's JSON through
	// GET /flotilla/v1/agents; a deploy moves CPUs from free to used on
	// the page, without a reload.
	waitFor(t, 20*time.Second, "the cluster page listing 3 agents", func() bool { return b.count(t, "#agents tbody tr[data-agent]") == 3 })
	sum := func(what string) float64 {
		var v float64
		b.run(t, "sum the agents' "+what+" CPUs", chromedp.Evaluate(fmt.Sprintf(
			`[...document.querySelectorAll('#agents td.cpus')].reduce((s, td) => s + Number(td.dataset[%q]), 0)`, what), &v))
		return v
	}
	usedBefore, freeBefore := sum("used"), sum("free")
	if usedBefore <= 0 || freeBefore <= 0 {
		t.Fatalf("the cluster page shows %v CPUs used and %v free, want both > 0 (apps are running)", usedBefore, freeBefore)
	}
	env.deploy(t, `{"id":"/hog","instances":1,"cpus":0.5,"mem":16,"cmd":"sleep 100000",
	  "container":{"type":"DOCKER","docker":{"image":"flotilla/busybox:dev","network":"HOST"}}}`)
	waitFor(t, 60*time.Second, "the cluster page showing /hog's 0.5 CPUs used", func() bool {
		return sum("used") >= usedBefore+0.499 && sum("free") <= freeBefore-0.499
	})
	// The frameworks' health (Flotilla itself, subscribed) and the
	// replicas (this one, leading: flotilla dev has no ZooKeeper).
	waitFor(t, 20*time.Second, "the frameworks table with flotilla active", func() bool {
		return b.count(t, "#frameworks tbody tr[data-framework]") == 1 && strings.Contains(b.text(t, "#frameworks tbody"), "active")
	})
	if got := b.text(t, "#replicas"); !strings.Contains(got, "(leader)") {
		t.Fatalf("replicas list %q, want this replica as the leader", got)
	}
	b.screenshot(t, "ui-cluster.png")

	var noReload any
	b.run(t, "check the page never reloaded", chromedp.Evaluate(`window.__noReload`, &noReload))
	if noReload == nil {
		t.Errorf("the page reloaded during the test (window.__noReload is gone); updates must come live")
	}
	if out := b.Outside(env.api); len(out) > 0 {
		t.Fatalf("the page requested %d URLs outside the server: %q", len(out), out)
	}

	// On a phone: the list still reads.
	phone := newBrowser(t, 390, 844)
	phone.run(t, "open the apps list on a phone", chromedp.Navigate(env.api+"/#/"))
	phone.waitText(t, 20*time.Second, ".vlist", "/web")
	phone.screenshot(t, "ui-phone.png")
}

// TestUIBrowserRollbackSecret rolls an app back from its versions page in
// headless Chromium, and checks that a secret's value, stored in the test
// bed's Vault and given to the app's tasks, appears nowhere in the page's
// DOM or in any of its network traffic (requests, response bodies, event
// stream), while its reference does.
func TestUIBrowserRollbackSecret(t *testing.T) {
	t.Parallel()
	vaddr, vtoken := testbed.Vault(t)
	canary := "canary-" + randomString(t)
	vc, err := vault.NewClient(&vault.Config{Address: vaddr})
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(vtoken)
	path := "flotilla-ui/" + randomString(t)
	if _, err := vc.KVv2("secret").Put(context.Background(), path, map[string]any{"password": canary}); err != nil {
		t.Fatalf("store the canary in Vault: %v", err)
	}
	t.Cleanup(func() {
		if err := vc.KVv2("secret").DeleteMetadata(context.Background(), path); err != nil {
			t.Logf("remove the canary's path from Vault: %v", err)
		}
	})
	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), vault: [2]string{vaddr, vtoken}, ports: [2]uint64{31700, 31799}})
	spec := func(mode string) string {
		return fmt.Sprintf(`{"id":"/vaulted","cmd":"sleep 100000","instances":1,"cpus":0.05,"mem":16,
		  "env":{"DB_PASSWORD":{"secret":"db"},"MODE":%q},"secrets":{"db":{"source":"secret/%s#password"}}}`, mode, path)
	}
	env.deploy(t, spec("first"))
	settled := func(mode string) func() bool {
		return func() bool {
			a := env.app(t, "/vaulted")
			return a.TasksRunning == 1 && len(a.Deployments) == 0 && a.Env["MODE"] == mode && len(a.Tasks) == 1 && a.Tasks[0].Version == a.Version
		}
	}
	waitFor(t, 60*time.Second, "/vaulted running its first version", settled("first"))
	if code, b := env.do(t, "PUT", "/v2/apps/vaulted", spec("second")); code != http.StatusOK {
		t.Fatalf("PUT the second version: %d %s", code, b)
	}
	waitFor(t, 60*time.Second, "/vaulted running its second version", settled("second"))

	b := newBrowser(t, 1280, 800)
	b.RecordBodies()
	b.run(t, "open /vaulted", chromedp.Navigate(env.api+"/#/app/vaulted"))
	b.waitText(t, 30*time.Second, "#secrets", "secret/"+path+"#password")
	b.waitText(t, 30*time.Second, "#rollback", "Roll back to ")
	b.run(t, "diff the two versions", chromedp.Click("#diff-btn", chromedp.ByQuery))
	// The only changed line: MODE, removed in the older, added in the newer.
	b.waitText(t, 30*time.Second, "#diff .del", `"MODE": "first"`)
	if d := b.text(t, "#diff .add"); !strings.Contains(d, `"MODE": "second"`) {
		t.Fatalf("the diff's added line reads %q, want MODE second", d)
	}
	b.run(t, "scroll to the versions", chromedp.ScrollIntoView("#diff .del", chromedp.ByQuery))
	b.screenshot(t, "ui-versions.png")
	b.run(t, "roll back", chromedp.Click("#rollback", chromedp.ByQuery))
	b.waitText(t, 30*time.Second, "#action-msg", "accepted")
	waitFor(t, 60*time.Second, "/vaulted running its first definition again", settled("first"))
	// Live, without a reload: the configuration shows the old value and
	// the versions list has the rollback's version.
	b.waitText(t, 30*time.Second, "#versions", "Versions (3)")
	b.waitText(t, 30*time.Second, "#config", "first")
	b.waitText(t, 30*time.Second, "#instances", "1 healthy of 1")

	// Everything the page holds and everything it exchanged: the value of
	// the secret nowhere, its reference there (so the search looked at
	// the right things). Neither is printed: a failure says where.
	var dom string
	b.run(t, "read the DOM", chromedp.Evaluate(`document.documentElement.outerHTML + [...document.querySelectorAll('input,textarea,select')].map(e => e.value).join('\n')`, &dom))
	if strings.Contains(dom, canary) {
		t.Errorf("the secret's value is in the page's DOM")
	}
	traffic := b.Traffic()
	seenRef := false
	for i, c := range traffic {
		if strings.Contains(c, canary) {
			t.Errorf("the secret's value is in the page's traffic (item %d of %d, %d bytes)", i, len(traffic), len(c))
		}
		seenRef = seenRef || (strings.HasPrefix(c, "response ") && strings.Contains(c, "secret/"+path))
	}
	if !seenRef {
		t.Errorf("no recorded response body holds the secret's reference (%d items recorded): the traffic search saw nothing", len(traffic))
	}
	if out := b.Outside(env.api); len(out) > 0 {
		t.Fatalf("the page requested %d URLs outside the server: %q", len(out), out)
	}
}
