package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDevFetch: an app whose program is not on the agent at all, as
// Marathon apps with fetch/uris are deployed: the agent downloads the
// test app's binary (executable) and a config archive (extracted) from an
// HTTP server on loopback into the sandbox, and the command runs them
// from there. A URI that cannot be fetched fails the task with a reason
// naming it, visible in the app's lastTaskFailure.
func TestDevFetch(t *testing.T) {
	t.Parallel()
	bin, err := os.ReadFile(testappBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	gz := gzip.NewWriter(&archive)
	tw := tar.NewWriter(gz)
	conf := "from the archive"
	tw.WriteHeader(&tar.Header{Name: "conf/app.txt", Mode: 0o644, Size: int64(len(conf)), Typeflag: tar.TypeReg})
	tw.Write([]byte(conf))
	tw.Close()
	gz.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/dist/testapp":
			w.Write(bin)
		case "/dist/conf.tgz":
			w.Write(archive.Bytes())
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), ports: [2]uint64{28900, 28999}})
	// The deprecated uris form for the archive, fetch for the binary:
	// Marathon accepts both, and so does Flotilla (not both in one app).
	env.deploy(t, fmt.Sprintf(`{"id": "/fetched", "cmd": "test -s conf/app.txt && exec ./testapp", "cpus": 0.05, "mem": 32,
		"fetch": [{"uri": %q, "executable": true}, {"uri": %q}],
		"healthChecks": [{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 1}]}`,
		srv.URL+"/dist/testapp", srv.URL+"/dist/conf.tgz"))
	waitFor(t, 60*time.Second, "the fetched program to run healthy", func() bool { return env.app(t, "/fetched").TasksHealthy == 1 })

	env.deploy(t, fmt.Sprintf(`{"id": "/unfetchable", "cmd": "./nothing", "cpus": 0.05, "mem": 16, "uris": [%q]}`, srv.URL+"/dist/missing.tgz"))
	waitFor(t, 60*time.Second, "the fetch failure in lastTaskFailure", func() bool {
		_, b := env.do(t, "GET", "/v2/apps/unfetchable", "")
		return strings.Contains(string(b), "failed to fetch '"+srv.URL+"/dist/missing.tgz'") && strings.Contains(string(b), "404")
	})
}
