package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

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
	env := startDev(t, devOpts{executor: "docker", upstream: fakeUpstream(t), ports: [2]uint64{31600, 31699}})
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
	b.screenshot(t, "ui-app.png")

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

	b.run(t, "open the apps list", chromedp.Navigate(env.api+"/#/"))
	b.waitText(t, 20*time.Second, ".vlist", "/web")
	if s := b.text(t, ".vlist"); !strings.Contains(s, "web.flotilla.mesos") || !strings.Contains(s, "external") || !strings.Contains(s, "5/5") {
		t.Errorf("the apps list reads %q, want /web with 5/5, external and its DNS name", s)
	}
	b.screenshot(t, "ui-apps.png")
	b.run(t, "open the cluster page", chromedp.Navigate(env.api+"/#/cluster"))
	b.waitText(t, 20*time.Second, "#leader", "127.0.0.1")

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
