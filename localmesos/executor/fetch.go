package executor

import (
	"archive/tar"
	"archive/zip"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// fetchTimeout bounds one URI's download, as the agent's
// --fetcher_stall_timeout bounds a stalled one.
const fetchTimeout = 2 * time.Minute

// Fetch downloads a task's CommandInfo.uris into its sandbox before it
// starts, as Mesos's fetcher does: file:// (or a plain path) and
// http(s):// sources; the file is named after the URI's last path segment
// or output_file; archives (.tar, .tgz/.tar.gz, .tbz2/.tar.bz2, .zip) are
// extracted into the sandbox when extract is set (Mesos's default), the
// archive itself kept; executable sets mode 0755. Nothing is written
// outside the sandbox. The error names the URI, for the task's
// TASK_FAILED message (Mesos reports "Failed to fetch all URIs").
func Fetch(ctx context.Context, sandbox string, uris []mesos.CommandInfo_URI, client *http.Client) error {
	for _, u := range uris {
		if err := fetchOne(ctx, sandbox, u, client); err != nil {
			return fmt.Errorf("failed to fetch '%s': %w", u.Value, err)
		}
	}
	return nil
}

func fetchOne(ctx context.Context, sandbox string, u mesos.CommandInfo_URI, client *http.Client) error {
	name := u.GetOutputFile()
	src, err := url.Parse(u.Value)
	if err != nil {
		return err
	}
	if name == "" {
		p := src.Path
		if src.Scheme == "" {
			p = u.Value
		}
		name = path.Base(p)
	}
	dest, err := inside(sandbox, name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	var body io.ReadCloser
	switch src.Scheme {
	case "", "file":
		p := src.Path
		if src.Scheme == "" {
			p = u.Value
		}
		if body, err = os.Open(p); err != nil {
			return err
		}
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.Value, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("HTTP %s", resp.Status)
		}
		body = resp.Body
	default:
		return fmt.Errorf("unsupported scheme %q (this agent fetches file://, http:// and https://)", src.Scheme)
	}
	defer body.Close()
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if u.GetExecutable() {
		if err := os.Chmod(dest, 0o755); err != nil {
			return err
		}
	}
	// Mesos's default is extract: true.
	if u.Extract == nil || *u.Extract {
		return extract(dest, sandbox)
	}
	return nil
}

// inside resolves name within dir, refusing a path that leaves it.
func inside(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%q is not a file inside the sandbox", name)
	}
	return p, nil
}

// extract unpacks an archive into dir; other files are left alone.
func extract(file, dir string) error {
	lower := strings.ToLower(file)
	switch {
	case strings.HasSuffix(lower, ".zip"):
		return unzip(file, dir)
	case strings.HasSuffix(lower, ".tar"):
		return untar(file, dir, func(r io.Reader) (io.Reader, error) { return r, nil })
	case strings.HasSuffix(lower, ".tgz"), strings.HasSuffix(lower, ".tar.gz"):
		return untar(file, dir, func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) })
	case strings.HasSuffix(lower, ".tbz2"), strings.HasSuffix(lower, ".tar.bz2"):
		return untar(file, dir, func(r io.Reader) (io.Reader, error) { return bzip2.NewReader(r), nil })
	case strings.HasSuffix(lower, ".txz"), strings.HasSuffix(lower, ".tar.xz"):
		return errors.New("cannot extract xz archives on this agent; fetch a .tar.gz, .tbz2 or .zip, or set extract: false")
	}
	return nil
}

func untar(file, dir string, wrap func(io.Reader) (io.Reader, error)) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := wrap(f)
	if err != nil {
		return fmt.Errorf("extract %s: %w", filepath.Base(file), err)
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("extract %s: %w", filepath.Base(file), err)
		}
		p, err := inside(dir, h.Name)
		if err != nil {
			if h.Name == "./" || h.Name == "." {
				continue
			}
			return fmt.Errorf("extract %s: %w", filepath.Base(file), err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeFile(p, tr, os.FileMode(h.Mode)&0o777); err != nil {
				return err
			}
		default:
			// Links and devices could point outside the sandbox: skipped.
		}
	}
}

func unzip(file, dir string) error {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return fmt.Errorf("extract %s: %w", filepath.Base(file), err)
	}
	defer zr.Close()
	for _, zf := range zr.File {
		p, err := inside(dir, zf.Name)
		if err != nil {
			return fmt.Errorf("extract %s: %w", filepath.Base(file), err)
		}
		if zf.FileInfo().IsDir() {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return err
		}
		err = writeFile(p, rc, zf.Mode()&0o777)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func writeFile(p string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if mode == 0 {
		mode = 0o644
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
