package localmesos

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// maxReadLength is the most /files/read returns at once: Mesos caps a
// read at 16 pages (files.cpp), and clients (the Mesos UI's pailer, dcos
// task log, Flotilla) page through with offsets.
const maxReadLength = 16 * 4096

// Defaults of the sandbox garbage collector. Mesos keeps a finished
// executor's sandbox for --gc_delay (a week) or until the disk is short;
// these are smaller because flotilla dev runs on a laptop or a CI box.
const (
	DefaultSandboxMaxAge   = time.Hour
	DefaultSandboxMaxBytes = 256 << 20
)

// sandbox is one task's directory as the agent's /files endpoints expose
// it: under its real path and under Mesos's virtual path
// /frameworks/<fw>/executors/<executor>/runs/latest (the path frameworks
// use, since they do not know the agent's work directory).
type sandbox struct {
	dir     string // absolute, symlinks resolved
	virtual string
	ended   time.Time // when the task reached a terminal state; zero while it runs
}

// sandboxes is an agent's record of its sandboxes. Its own lock, never
// held across I/O, so /files requests never wait on the master's lock;
// the order is master lock, then this one.
type sandboxes struct {
	mu     sync.Mutex
	byName map[string]*sandbox // virtual path and real dir → sandbox
}

func (s *sandboxes) attach(sb *sandbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byName == nil {
		s.byName = map[string]*sandbox{}
	}
	s.byName[sb.virtual] = sb
	s.byName[sb.dir] = sb
}

func (s *sandboxes) markEnded(virtual string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sb := s.byName[virtual]; sb != nil && sb.ended.IsZero() {
		sb.ended = at
	}
}

func (s *sandboxes) detach(sb *sandbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byName[sb.virtual] == sb {
		delete(s.byName, sb.virtual)
	}
	if s.byName[sb.dir] == sb {
		delete(s.byName, sb.dir)
	}
}

// ended lists the sandboxes of finished tasks, oldest first.
func (s *sandboxes) endedList() []*sandbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[*sandbox]bool{}
	var out []*sandbox
	for _, sb := range s.byName {
		if !sb.ended.IsZero() && !seen[sb] {
			seen[sb] = true
			out = append(out, sb)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ended.Before(out[j].ended) })
	return out
}

// errOutside is a path that resolves outside every sandbox (a "../" or a
// symlink out): Mesos answers 400 "... is inaccessible".
var errOutside = errors.New("is inaccessible")

// resolve maps a requested path to a file inside a sandbox, as Mesos's
// FilesProcess::resolve does: the longest attached prefix, the rest joined
// to its directory, symlinks resolved, and the result refused unless it is
// still inside that directory. ("", nil) means not found.
func (s *sandboxes) resolve(p string) (string, error) {
	tokens := strings.Split(strings.TrimSuffix(p, "/"), "/")
	var suffix []string
	for len(tokens) > 0 {
		prefix := strings.Join(tokens, "/")
		s.mu.Lock()
		sb := s.byName[prefix]
		s.mu.Unlock()
		if sb == nil {
			suffix = append([]string{tokens[len(tokens)-1]}, suffix...)
			tokens = tokens[:len(tokens)-1]
			continue
		}
		full := filepath.Join(append([]string{sb.dir}, suffix...)...)
		real, err := filepath.EvalSymlinks(full)
		if errors.Is(err, fs.ErrNotExist) {
			// A "../" that leaves the sandbox is refused even when the
			// target does not exist, so nobody learns what exists outside.
			if !within(sb.dir, full) {
				return "", fmt.Errorf("'%s' %w", p, errOutside)
			}
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("failed to determine canonical path of '%s': %w", p, err)
		}
		if !within(sb.dir, real) {
			return "", fmt.Errorf("'%s' %w", p, errOutside)
		}
		return real, nil
	}
	return "", nil
}

// within reports whether p is dir or below it (Mesos compares string
// prefixes, which lets /a/bc pass for /a/b; this does not).
func within(dir, p string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// fileInfo is one entry of /files/browse, Mesos's jsonFileInfo.
type fileInfo struct {
	Path  string  `json:"path"`
	Nlink uint64  `json:"nlink"`
	Size  int64   `json:"size"`
	Mtime float64 `json:"mtime"`
	Mode  string  `json:"mode"`
	UID   string  `json:"uid"`
	GID   string  `json:"gid"`
}

func newFileInfo(p string, fi fs.FileInfo) fileInfo {
	out := fileInfo{Path: p, Size: fi.Size(), Mtime: float64(fi.ModTime().Unix()), Mode: fi.Mode().String(), Nlink: 1}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		out.Nlink = uint64(st.Nlink)
		out.UID = strconv.FormatUint(uint64(st.Uid), 10)
		out.GID = strconv.FormatUint(uint64(st.Gid), 10)
	}
	if fi.IsDir() {
		out.Size = 4096 // what stat gives a directory on ext4; Mesos passes st_size through
	}
	return out
}

// filesRoutes registers /files/{browse,read,download,debug} (and Mesos's
// deprecated .json aliases) on an agent's mux.
func (a *agent) filesRoutes(mux *http.ServeMux) {
	for _, p := range []string{"/files", "/slave(1)/files"} {
		mux.HandleFunc(p+"/browse", a.filesBrowse)
		mux.HandleFunc(p+"/browse.json", a.filesBrowse)
		mux.HandleFunc(p+"/read", a.filesRead)
		mux.HandleFunc(p+"/read.json", a.filesRead)
		mux.HandleFunc(p+"/download", a.filesDownload)
		mux.HandleFunc(p+"/download.json", a.filesDownload)
		mux.HandleFunc(p+"/debug", a.filesDebug)
		mux.HandleFunc(p+"/debug.json", a.filesDebug)
	}
}

// filesPath checks the method and the agent and resolves the path query
// parameter; it has answered when it returns ok false.
func (a *agent) filesPath(w http.ResponseWriter, r *http.Request, badStatus int) (string, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "Expecting one of { 'GET' }", http.StatusMethodNotAllowed)
		return "", false
	}
	a.m.mu.Lock()
	active := a.state == agentActive
	a.m.mu.Unlock()
	if !active {
		http.Error(w, "agent is not reachable", http.StatusServiceUnavailable)
		return "", false
	}
	p := r.URL.Query().Get("path")
	if p == "" {
		http.Error(w, "Expecting 'path=value' in query.", http.StatusBadRequest)
		return "", false
	}
	real, err := a.files.resolve(p)
	if err != nil {
		http.Error(w, err.Error()+".", badStatus)
		return "", false
	}
	if real == "" {
		http.NotFound(w, r)
		return "", false
	}
	return real, true
}

// filesBrowse answers /files/browse: the directory's entries sorted by
// path, each in jsonFileInfo's shape, their paths under the requested one.
func (a *agent) filesBrowse(w http.ResponseWriter, r *http.Request) {
	real, ok := a.filesPath(w, r, http.StatusBadRequest)
	if !ok {
		return
	}
	req := strings.TrimSuffix(r.URL.Query().Get("path"), "/")
	entries, err := os.ReadDir(real)
	if err != nil {
		// Mesos lists nothing for a file or an unreadable directory.
		writeJSON(w, http.StatusOK, []fileInfo{})
		return
	}
	out := make([]fileInfo, 0, len(entries))
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join(real, e.Name()))
		if err != nil {
			continue // gone between the listing and the stat, as in Mesos
		}
		out = append(out, newFileInfo(path.Join(req, e.Name()), fi))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	writeJSON(w, http.StatusOK, out)
}

// filesRead answers /files/read as Mesos's FilesProcess::read does:
// offset (default -1, the file's size: how clients learn where the end
// is), length (default to the end), capped at 16 pages; an offset at or
// past the end gives {"offset": size, "data": ""}.
func (a *agent) filesRead(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	offset, length := int64(-1), int64(-1)
	if v := q.Get("offset"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			http.Error(w, "Failed to parse offset: "+err.Error()+".", http.StatusBadRequest)
			return
		}
		offset = n
	}
	if v := q.Get("length"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			http.Error(w, "Failed to parse length: "+err.Error()+".", http.StatusBadRequest)
			return
		}
		length = n
	}
	if offset < -1 || length < -1 {
		http.Error(w, "Negative offset or length provided.", http.StatusBadRequest)
		return
	}
	real, ok := a.filesPath(w, r, http.StatusBadRequest)
	if !ok {
		return
	}
	f, fi, ok := openFile(w, real, "read")
	if !ok {
		return
	}
	defer f.Close()
	size := fi.Size()
	if offset == -1 {
		offset = size
	}
	if length == -1 {
		length = size - offset
	}
	length = min(length, maxReadLength)
	if offset >= size || length <= 0 {
		writeJSON(w, http.StatusOK, map[string]any{"offset": size, "data": ""})
		return
	}
	buf := make([]byte, length)
	n, err := f.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		http.Error(w, fmt.Sprintf("Failed to read file: %v.", err), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"offset": offset, "data": string(buf[:n])})
}

// openFile opens a resolved path for read or download; directories are
// refused as Mesos refuses them. It has answered when ok is false.
func openFile(w http.ResponseWriter, real, verb string) (*os.File, fs.FileInfo, bool) {
	f, err := os.Open(real)
	if err != nil {
		http.Error(w, fmt.Sprintf("Failed to open file: %v.", err), http.StatusInternalServerError)
		return nil, nil, false
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		f.Close() // read-only: nothing to lose
		http.Error(w, "Cannot "+verb+" a directory.", http.StatusBadRequest)
		return nil, nil, false
	}
	if err != nil {
		f.Close()
		http.Error(w, fmt.Sprintf("Failed to stat file: %v.", err), http.StatusInternalServerError)
		return nil, nil, false
	}
	return f, fi, true
}

// filesDownload answers /files/download: the raw file as an attachment.
func (a *agent) filesDownload(w http.ResponseWriter, r *http.Request) {
	real, ok := a.filesPath(w, r, http.StatusBadRequest)
	if !ok {
		return
	}
	f, fi, ok := openFile(w, real, "download")
	if !ok {
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", "attachment; filename="+filepath.Base(real))
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// filesDebug answers /files/debug: the attached paths.
func (a *agent) filesDebug(w http.ResponseWriter, r *http.Request) {
	a.files.mu.Lock()
	out := make(map[string]string, len(a.files.byName))
	for name, sb := range a.files.byName {
		out[name] = sb.dir
	}
	a.files.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// sandboxGCLoop removes finished tasks' sandboxes older than
// Config.SandboxMaxAge, then the oldest ones while those left take more
// than Config.SandboxMaxBytes (per agent), as the agent's GC does with
// --gc_delay and the disk headroom.
func (m *Master) sandboxGCLoop() {
	defer m.wg.Done()
	every := min(m.cfg.SandboxMaxAge/4, 30*time.Second)
	tick := m.clock.NewTicker(max(every, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-tick.C():
		case <-m.ctx.Done():
			return
		}
		m.collectSandboxes(m.now())
	}
}

// collectSandboxes is one pass of the sandbox GC over every agent, as of
// now.
func (m *Master) collectSandboxes(now time.Time) {
	m.mu.Lock()
	agents := append([]*agent(nil), m.agentList...)
	m.mu.Unlock()
	for _, a := range agents {
		a.collectSandboxes(now, m.cfg.SandboxMaxAge, m.cfg.SandboxMaxBytes, m.log)
	}
}

func (a *agent) collectSandboxes(now time.Time, maxAge time.Duration, maxBytes int64, log *logrus.Entry) {
	ended := a.files.endedList()
	type sized struct {
		sb   *sandbox
		size int64
	}
	var keep []sized
	var total int64
	for _, sb := range ended {
		if now.Sub(sb.ended) >= maxAge {
			a.removeSandbox(sb, log)
			continue
		}
		n := dirSize(sb.dir)
		keep = append(keep, sized{sb, n})
		total += n
	}
	for i := 0; total > maxBytes && i < len(keep); i++ {
		a.removeSandbox(keep[i].sb, log)
		total -= keep[i].size
	}
}

func (a *agent) removeSandbox(sb *sandbox, log *logrus.Entry) {
	a.files.detach(sb)
	if err := os.RemoveAll(sb.dir); err != nil {
		log.WithError(err).WithFields(logrus.Fields{"agent": a.id, "sandbox": sb.virtual}).Warn("removing a finished task's sandbox")
	}
}

// dirSize is the bytes the files under dir take; unreadable parts count 0.
func dirSize(dir string) int64 {
	var n int64
	// The walk's own error is always nil: a file removed under it (a
	// task still writing, another collection) counts as 0 and the walk
	// goes on.
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// sandboxVirtual is Mesos's getExecutorVirtualPath.
func sandboxVirtual(frameworkID, executorID string) string {
	return "/frameworks/" + frameworkID + "/executors/" + executorID + "/runs/latest"
}
