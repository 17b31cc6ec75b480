package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/store"
)

// httpError is an error with Marathon's body shape:
// {"message": "…", "details": [{"path", "errors"}], "deployments": [{"id"}]}.
type httpError struct {
	Status      int              `json:"-"`
	Message     string           `json:"message"`
	Details     []appspec.Detail `json:"details,omitempty"`
	Deployments []deploymentRef  `json:"deployments,omitempty"`
}

type deploymentRef struct {
	ID string `json:"id"`
}

func (e *httpError) Error() string { return "api: " + e.Message }

func errorf(status int, format string, args ...any) *httpError {
	return &httpError{Status: status, Message: fmt.Sprintf(format, args...)}
}

func notFoundApp(id string) error { return deploy.NotFoundApp(id) }

// appMissing answers a request for an app the index does not hold: 404,
// or 409 when the store holds it but cannot read it (not missing, so a
// 404 would mislead).
func (s *Server) appMissing(id string) error {
	if it, bad := s.dep.BrokenApp(id); bad {
		return deploy.UnreadableApp(id, it)
	}
	return notFoundApp(id)
}

// depIDFor is the id of the app's running deployment, or "".
func (s *Server) depIDFor(appID string) string {
	if d := s.dep.DeploymentOf(appID); d != nil {
		return d.ID
	}
	return ""
}

// toHTTP maps any error a handler returns to its status and body. Errors
// that are not the client's fault keep their text (it names what failed
// and never holds a secret value) and are logged by the caller.
func toHTTP(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	var ve *appspec.ValidationError
	var de *deploy.Error
	switch {
	case errors.As(err, &de):
		he := &httpError{Status: http.StatusConflict, Message: de.Message}
		switch de.Kind {
		case deploy.NotFound:
			he.Status = http.StatusNotFound
		case deploy.Locked:
			he.Deployments = []deploymentRef{{ID: de.Deployment}}
		}
		return he
	case errors.Is(err, appspec.ErrTooLarge):
		return &httpError{Status: http.StatusRequestEntityTooLarge, Message: "Request body too large: an app definition must be at most 1 MiB",
			Details: []appspec.Detail{{Path: "/", Errors: []string{err.Error()}}}}
	case errors.As(err, &ve):
		status := http.StatusUnprocessableEntity
		if errors.Is(err, appspec.ErrMalformed) {
			status = http.StatusBadRequest
		}
		return &httpError{Status: status, Message: ve.Message, Details: ve.Details}
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, "%v (another change to this app was accepted meanwhile)", err)
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, "%v", err)
	case errors.Is(err, store.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "%v; make the app definition smaller", err)
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusServiceUnavailable, "%v: the store or Vault did not answer in time; retry later", err)
	case errors.Is(err, context.Canceled):
		return errorf(499, "%v", err)
	}
	return errorf(http.StatusInternalServerError, "internal error: %v", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"message":"internal error: encoding the response failed"}`)
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte("\n"))
}
