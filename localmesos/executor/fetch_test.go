package executor

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func tgz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func zipOf(t *testing.T, name, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(body))
	zw.Close()
	return buf.Bytes()
}

// TestFetch: Mesos's fetcher semantics on a sandbox: http and file
// sources, archives extracted (the archive kept), executable, output_file,
// and refusals that name the URI and write nothing outside the sandbox.
func TestFetch(t *testing.T) {
	t.Parallel()
	files := map[string][]byte{
		"/app.tgz":  tgz(t, map[string]string{"conf/app.yml": "port: 1\n"}),
		"/evil.tgz": tgz(t, map[string]string{"../escape": "x"}),
		"/site.zip": zipOf(t, "www/index.html", "<h1>hi</h1>"),
		"/run.sh":   []byte("#!/bin/sh\necho hi\n"),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	local := filepath.Join(t.TempDir(), "local.txt")
	if err := os.WriteFile(local, []byte("from disk"), 0o600); err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	out := "renamed.txt"
	sandbox := t.TempDir()
	err := Fetch(context.Background(), sandbox, []mesos.CommandInfo_URI{
		{Value: srv.URL + "/app.tgz"},
		{Value: srv.URL + "/site.zip", Extract: &yes},
		{Value: srv.URL + "/run.sh", Executable: &yes, Extract: &no},
		{Value: "file://" + local, OutputFile: &out},
	}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"conf/app.yml": "port: 1\n", "www/index.html": "<h1>hi</h1>", "renamed.txt": "from disk", "run.sh": "#!/bin/sh\necho hi\n"} {
		b, err := os.ReadFile(filepath.Join(sandbox, name))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q %v", name, b, err)
		}
	}
	if st, err := os.Stat(filepath.Join(sandbox, "run.sh")); err != nil || st.Mode().Perm()&0o100 == 0 {
		t.Errorf("run.sh not executable: %v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(sandbox, "app.tgz")); err != nil {
		t.Errorf("the archive is not kept: %v", err)
	}

	parent := t.TempDir()
	box := filepath.Join(parent, "box")
	os.Mkdir(box, 0o755)
	for _, tc := range []struct {
		uri    mesos.CommandInfo_URI
		substr string
	}{
		{mesos.CommandInfo_URI{Value: srv.URL + "/missing"}, "404"},
		{mesos.CommandInfo_URI{Value: srv.URL + "/evil.tgz"}, "not a file inside the sandbox"},
		{mesos.CommandInfo_URI{Value: "ftp://example.org/x"}, "unsupported scheme"},
		{mesos.CommandInfo_URI{Value: srv.URL + "/run.sh", OutputFile: strPtr("../out")}, "not a file inside the sandbox"},
	} {
		err := Fetch(context.Background(), box, []mesos.CommandInfo_URI{tc.uri}, srv.Client())
		if err == nil || !strings.Contains(err.Error(), tc.substr) || !strings.Contains(err.Error(), "failed to fetch '"+tc.uri.Value+"'") {
			t.Errorf("%s: %v, want %q", tc.uri.Value, err, tc.substr)
		}
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Errorf("something was written beside the sandbox: %v", ents)
	}
}
