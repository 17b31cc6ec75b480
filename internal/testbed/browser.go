package testbed

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Chromium returns the path of Debian's chromium (FLOTILLA_CHROMIUM, default
// /usr/bin/chromium; scripts/testbed.sh installs it). Missing, the test is
// skipped, or fails under CI=true.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("FLOTILLA_CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	missing(t, "Debian's chromium", "apt-get install -y chromium")
	return ""
}

// Browser is headless Chromium for one test, driven through chromedp. It
// records every request the page makes and all the traffic's content
// (request bodies, response bodies, event-stream messages), so a test can
// fail on a request that leaves the server or on content that carries what
// it must not.
type Browser struct {
	Ctx context.Context

	mu      sync.Mutex
	urls    []string
	traffic []string
	// pending counts response bodies being fetched; bodiesDone (on mu)
	// wakes Traffic when it falls to zero. Not a WaitGroup: a response
	// may finish while Traffic waits, and a WaitGroup's Add from zero
	// racing its Wait is a data race (CI's race detector caught it).
	pending    int
	bodiesDone *sync.Cond
	// withBodies turns on the recording of response bodies, which costs
	// a protocol round trip per response (RecordBodies).
	withBodies atomic.Bool
}

// RecordBodies makes the browser record response bodies from now on.
func (b *Browser) RecordBodies() { b.withBodies.Store(true) }

// NewBrowser starts Chromium with a window of width×height; it stops with
// the test.
func NewBrowser(t testing.TB, width, height int) *Browser {
	t.Helper()
	profile, err := os.MkdirTemp("", "flotilla-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(Chromium(t)), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.WindowSize(width, height),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(profile))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		// chromedp.Cancel waits for the browser process; its helpers may
		// still write the profile a moment after (a clean-clone make test
		// failed t.TempDir's removal once: "Default: directory not
		// empty"), so the profile is removed here until it is gone.
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("closing the browser: %v", err)
		}
		cancel()
		cancelAlloc()
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := os.RemoveAll(profile)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("the browser's profile %s is still there 30 s after the browser closed: %v", profile, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	b := &Browser{Ctx: ctx}
	b.bodiesDone = sync.NewCond(&b.mu)
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.record(e.Request.URL, e.Request.URL)
			for _, entry := range e.Request.PostDataEntries {
				// Base64 in the protocol; kept as sent, so a test decodes
				// when it looks (Traffic).
				b.record("", "request body (base64) "+entry.Bytes)
			}
		case *network.EventEventSourceMessageReceived:
			b.record("", "event "+e.EventName+" "+e.Data)
		case *network.EventDataReceived:
			// Streamed responses (fetch with a reader) have no body to
			// ask for at the end; their chunks come here when enabled.
			if len(e.Data) > 0 {
				b.record("", "chunk (base64) "+e.Data)
			}
		case *network.EventLoadingFinished:
			if !b.withBodies.Load() {
				return
			}
			// The body is fetched off the listener: the listener must not
			// block on the protocol it is called from.
			b.mu.Lock()
			b.pending++
			b.mu.Unlock()
			go func() {
				defer func() {
					b.mu.Lock()
					b.pending--
					b.bodiesDone.Broadcast()
					b.mu.Unlock()
				}()
				_ = chromedp.Run(ctx, chromedp.ActionFunc(func(ctx context.Context) error {
					body, err := network.GetResponseBody(e.RequestID).Do(ctx)
					if err != nil {
						return err // evicted or a stream: its data came as chunks or events
					}
					b.record("", "response "+string(body))
					return nil
				}))
			}()
		}
	})
	if err := chromedp.Run(ctx, network.Enable()); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *Browser) record(url, content string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if url != "" {
		b.urls = append(b.urls, url)
	}
	b.traffic = append(b.traffic, content)
}

// Traffic is everything recorded so far: URLs, request bodies, response
// bodies, event-stream messages and streamed chunks, base64 ones decoded.
func (b *Browser) Traffic() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.pending > 0 {
		b.bodiesDone.Wait()
	}
	out := make([]string, 0, len(b.traffic))
	for _, c := range b.traffic {
		for _, p := range []string{"request body (base64) ", "chunk (base64) "} {
			if rest, ok := strings.CutPrefix(c, p); ok {
				if dec, err := base64.StdEncoding.DecodeString(rest); err == nil {
					c = p[:len(p)-len("(base64) ")] + string(dec)
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// Run runs actions with a generous deadline; a failure fails the test.
func (b *Browser) Run(t testing.TB, what string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Text is an element's textContent ("" when it is not there).
func (b *Browser) Text(t testing.TB, sel string) string {
	t.Helper()
	var s string
	b.Run(t, "read "+sel, chromedp.Evaluate(fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel), &s))
	return s
}

// WaitText waits until the element's text holds want, without reloading.
func (b *Browser) WaitText(t testing.TB, d time.Duration, sel, want string) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		if last = b.Text(t, sel); strings.Contains(last, want) {
			return
		}
		time.Sleep(200 * time.Millisecond) // a poll interval, not a wait for something
	}
	t.Fatalf("after %v, %s reads %q, want %q in it", d, sel, last, want)
}

// Outside lists the requests that did not go to origin.
func (b *Browser) Outside(origin string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, u := range b.urls {
		if !strings.HasPrefix(u, origin+"/") && !strings.HasPrefix(u, "data:") {
			out = append(out, u)
		}
	}
	return out
}
