package api

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// appListQueries are the app lists compared on every path: each embed
// the kept fragments serve, and the filters.
var appListQueries = []string{
	"/v2/apps",
	"/v2/apps?embed=apps.tasks",
	"/v2/apps?embed=apps.tasks&embed=apps.lastTaskFailure&embed=apps.deployments&embed=apps.counts&embed=apps.readiness",
	"/v2/apps?id=big/app1",
	"/v2/apps?label=n",
	"/v2/apps?cmd=nothing-has-this",
}

// TestAppListKeptEqualsRendered: GET /v2/apps written from the apps' kept
// fragments with its length known (pieces.go), from kept chunks of apps
// when unfiltered (chunks.go) and app by app, answers byte for byte what
// the same fragments streamed through a bufio.Writer answer, and what a
// fresh rendering of every app (no kept fragments) answers, for seeded
// random trees and after each of a seeded series of changes (those of
// TestGroupTreeKeptEqualsRendered).
func TestAppListKeptEqualsRendered(t *testing.T) {
	seededChanges(t, []int64{21, 2121}, 12, sameListOnAllPaths)
}

// sameListOnAllPaths GETs each app list from the kept fragments (as
// pieces, then streamed) and rendered afresh, and fails unless all answer
// the same bytes. As in sameOnBothPaths, a pair that differs is asked
// again until the deadline (last failures are recorded on the API's own
// goroutine): stale bytes stay stale, a race does not.
func sameListOnAllPaths(t *testing.T, e *env, round string) {
	t.Helper()
	for _, q := range appListQueries {
		deadline := time.Now().Add(10 * time.Second)
		for {
			kept := e.do("GET", q, "")
			e.srv.lists.off.Store(true)
			perApp := e.do("GET", q, "")
			e.srv.lists.off.Store(false)
			e.srv.streamedLists.Store(true)
			streamed := e.do("GET", q, "")
			e.srv.streamedLists.Store(false)
			e.srv.noFragments.Store(true)
			fresh := e.do("GET", q, "")
			e.srv.noFragments.Store(false)
			// net/http adds a length itself to a short streamed answer that
			// fits its buffer, so only a long one tells the paths apart.
			if kept.header.Get("Content-Length") == "" || (len(streamed.body) > 4096 && streamed.header.Get("Content-Length") != "") {
				t.Fatalf("%s: GET %s: Content-Length %q from the kept path, %q streamed (%d bytes); want a length, then none",
					round, q, kept.header.Get("Content-Length"), streamed.header.Get("Content-Length"), len(streamed.body))
			}
			if kept.status == 200 && bytes.Equal(kept.body, fresh.body) && bytes.Equal(perApp.body, fresh.body) && bytes.Equal(streamed.body, fresh.body) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: GET %s: kept (status %d, %d bytes), kept app by app (%d bytes) and streamed (%d bytes) differ from the fresh rendering (status %d, %d bytes) at byte %d / %d / %d:\nkept: %.600s\nfresh: %.600s",
					round, q, kept.status, len(kept.body), len(perApp.body), len(streamed.body), fresh.status, len(fresh.body),
					firstDiff(kept.body, fresh.body), firstDiff(perApp.body, fresh.body), firstDiff(streamed.body, fresh.body), tail(kept.body, fresh.body), tail(fresh.body, kept.body))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestAppListChunks: the unfiltered app list from kept chunks leaves the
// pods out (they are /v2/pods's), reuses an unchanged chunk, and when the
// list gets shorter by more than a chunk keeps no chunk past its end.
func TestAppListChunks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedGroupTree(e, rand.New(rand.NewSource(7)))
	e.mustDo("POST", "/v2/pods", `{"id": "/apod", "containers": [{"name": "c", "resources": {"cpus": 0.01, "mem": 1}, "exec": {"command": {"shell": "sleep 1000"}}}]}`, http.StatusCreated)
	sameListOnAllPaths(t, e, "with a pod")
	if b := e.do("GET", "/v2/apps", "").body; bytes.Contains(b, []byte(`"/apod"`)) {
		t.Fatalf("GET /v2/apps lists the pod /apod: %.300s", b)
	}
	first := e.srv.lists.load(chunkKey{listChunks, 0, embed{}})
	e.do("GET", "/v2/apps", "")
	if again := e.srv.lists.load(chunkKey{listChunks, 0, embed{}}); first == nil || again != first {
		t.Fatalf("an unchanged list built its first chunk again (%p, then %p)", first, again)
	}
	n := len(e.srv.dep.Apps()) - 1 // the pod
	for i := 0; i < 2*chunkApps; i++ {
		e.do("DELETE", fmt.Sprintf("/v2/apps/big/app%d", i), "")
	}
	e.confirmKills()
	sameListOnAllPaths(t, e, "the list shorter by two chunks")
	left := len(e.srv.dep.Apps()) - 1
	if left > n-2*chunkApps {
		t.Fatalf("%d apps left of %d after removing %d", left, n, 2*chunkApps)
	}
	e.srv.lists.mu.Lock()
	defer e.srv.lists.mu.Unlock()
	for k := range e.srv.lists.chunks {
		if k.i*chunkApps >= left {
			t.Errorf("chunk %d (apps from %d) is kept for a list of %d apps", k.i, k.i*chunkApps, left)
		}
	}
}

// TestReaderFromThroughStatusWriter: on a real connection the kept
// answers reach net/http's ReadFrom (which hands a net.Buffers to the
// socket as writev) through the API's statusWriter; a writer without one
// (a recorder) gets a Write per piece.
func TestReaderFromThroughStatusWriter(t *testing.T) {
	t.Parallel()
	found := make(chan bool, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rf := readerFrom(&statusWriter{ResponseWriter: w})
		inner, ok := w.(io.ReaderFrom)
		found <- ok && rf == inner
	}))
	defer hs.Close()
	res, err := http.Get(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if !<-found {
		t.Error("readerFrom did not find net/http's ReadFrom through statusWriter")
	}
	if rf := readerFrom(&statusWriter{ResponseWriter: httptest.NewRecorder()}); rf != nil {
		t.Errorf("readerFrom found %T in a recorder, which has no ReadFrom", rf)
	}
}
