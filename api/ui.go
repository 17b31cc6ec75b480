package api

import (
	embedfs "embed"
	"io/fs"
	"net/http"
	"strings"
)

// The web UI (docs/ui.md): a static page, a stylesheet and one
// hand-written script, embedded in the binary and served by every replica
// at / and /ui/ through the route table, behind the same credentials as
// the API. The script reads only this origin's /v2 API, so a standby's UI
// works too: its API calls are forwarded to the leader like any client's.
//
//go:embed ui
var uiFiles embedfs.FS

// uiCSP lets the page load nothing but its own files and talk to nothing
// but its own origin: no CDN, font or analytics request can slip in, and
// an injected inline script would not run.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func uiAssets() http.Handler {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic("api: the embedded ui directory is missing: " + err.Error()) // a build error, not a runtime one
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic("api: the embedded ui/index.html is missing: " + err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", uiCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Assets change with the binary; revalidating is cheap.
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/" || r.URL.Path == "/ui/" || r.URL.Path == "/ui" || r.URL.Path == "/ui/index.html" {
			h.Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				_, _ = w.Write(index) // the client's loss alone
			}
			return
		}
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		files.ServeHTTP(w, r)
	})
}

// uiRoutes are the UI's entries of the route table: local, because every
// replica serves the page itself, and never open.
func (s *Server) uiRoutes() []*route {
	ui := uiAssets()
	serve := func(w http.ResponseWriter, r *http.Request, _ routeArgs) { ui.ServeHTTP(w, r) }
	return []*route{
		{pattern: "/", local: true, serve: serve},
		{pattern: "/ui", local: true, serve: serve},
		{pattern: "/ui/{rest...}", local: true, serve: serve},
	}
}
