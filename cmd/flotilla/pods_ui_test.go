package main

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestUIBrowserPods: the web UI lists a pod in its group's tree, tagged
// as a pod with its instances' health, opens its page with the instances
// and their containers, and scales it live. The pod is Marathon's docs'
// quick-start pod, on the process executor.
func TestUIBrowserPods(t *testing.T) {
	t.Parallel()
	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), ports: [2]uint64{21800, 21899}})
	doc, err := os.ReadFile("../../appspec/testdata/pods/marathon-docs-simplepod.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, b := env.do(t, "POST", "/v2/pods", string(doc)); code != http.StatusCreated {
		t.Fatalf("POST the pod: %d %s", code, b)
	}
	waitFor(t, 60*time.Second, "/simplepod stable", func() bool { return env.podStatus(t, "/simplepod").Status == "STABLE" })

	b := newBrowser(t, 1280, 800)
	b.run(t, "open the apps list", chromedp.Navigate(env.api+"/#/"))
	b.waitText(t, 30*time.Second, `a[data-app="/simplepod"]`, "pod")
	if href := b.attr(t, `a[data-app="/simplepod"]`, "href"); href != "#/pod/simplepod" {
		t.Fatalf("the pod's row links to %q, want its pod page", href)
	}
	b.waitText(t, 30*time.Second, `a[data-app="/simplepod"]`, "1/1")
	b.run(t, "open the pod", chromedp.Click(`a[data-app="/simplepod"]`, chromedp.ByQuery))
	b.waitText(t, 30*time.Second, "#pod-status", "STABLE · 1 stable of 1")
	b.waitText(t, 30*time.Second, "#pod-instances", "sleep1")
	b.waitText(t, 30*time.Second, "#pod-instances", "TASK_RUNNING")
	b.waitText(t, 30*time.Second, "#pod-spec", `"shell": "sleep 1000"`)

	b.run(t, "scale to 2", chromedp.SetValue("#pod-scale", "2", chromedp.ByQuery), chromedp.Click("#pod-scale ~ button", chromedp.ByQuery))
	b.waitText(t, 20*time.Second, "#action-msg", "accepted")
	// Live, without a reload.
	b.waitText(t, 60*time.Second, "#pod-status", "STABLE · 2 stable of 2")
	if n := b.count(t, "#pod-instances tbody tr"); n != 2 {
		t.Fatalf("%d rows in the instances table, want 2 (one container each)", n)
	}
}
