package localmesos

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"
)

const streamIDHeader = "Mesos-Stream-Id"

func (m *Master) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/scheduler", m.handleScheduler)
	mux.HandleFunc("/master/state", m.handleState)
	mux.HandleFunc("/state", m.handleState)
	mux.HandleFunc("/master/state.json", m.handleState)
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/master/health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/version", m.handleVersion)
	mux.HandleFunc("/admin/", m.handleAdmin)
	return m.recoverer(mux)
}

// recoverer is the handler edge: a panic in one request is logged with its
// stack and answered 500, never taking the master down.
func (m *Master) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				m.log.WithFields(logrus.Fields{"panic": p, "path": r.URL.Path, "stack": string(debug.Stack())}).Error("handler panicked")
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, r)
	})
}

func (m *Master) handleVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"version": Version, "git_sha": "localmesos", "build_user": "flotilla"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// acceptsType reports whether Accept-style header values admit the media
// type. An absent header accepts everything, as in HTTP and Mesos.
func acceptsType(values []string, want string) bool {
	if len(values) == 0 {
		return true
	}
	wantMain := strings.SplitN(want, "/", 2)[0]
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			mt, params, err := mime.ParseMediaType(part)
			if err != nil {
				continue
			}
			if q, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
					continue
				}
			}
			if mt == want || mt == "*/*" || mt == wantMain+"/*" {
				return true
			}
		}
	}
	return false
}

// callError is an answer other than 202: a status code and Mesos's text.
type callError struct {
	code int
	msg  string
}

func (e *callError) Error() string { return e.msg }

func badRequest(format string, args ...any) *callError {
	return &callError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// handleScheduler follows the order of checks in Mesos's
// Master::Http::scheduler: leadership, method, content type, body, call
// validation, then the call's own checks.
func (m *Master) handleScheduler(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	leader, closed := m.leader, m.closed
	m.mu.Unlock()
	if closed {
		http.Error(w, "Master is shutting down", http.StatusServiceUnavailable)
		return
	}
	if !leader.self {
		if !leader.known {
			http.Error(w, "No leader elected", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Location", "//"+leader.addr+"/api/v1/scheduler")
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, fmt.Sprintf("Expecting one of { 'POST' }, but received '%s'", r.Method), http.StatusMethodNotAllowed)
		return
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		http.Error(w, "Expecting 'Content-Type' to be present", http.StatusBadRequest)
		return
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		http.Error(w, fmt.Sprintf("Expecting 'Content-Type' of application/json or application/x-protobuf, got %q", ct), http.StatusUnsupportedMediaType)
		return
	}
	codec, ok := codecs.ByMediaType[encoding.MediaType(mt)]
	if !ok {
		http.Error(w, fmt.Sprintf("Expecting 'Content-Type' of application/json or application/x-protobuf, got %q", mt), http.StatusUnsupportedMediaType)
		return
	}
	body, err := readBody(w, r, m.cfg.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("Failed to parse body into Call: body exceeds %d bytes", m.cfg.MaxBodyBytes), http.StatusBadRequest)
			return
		}
		http.Error(w, "Failed to read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	call, err := decodeCall(codec, body)
	if err != nil {
		http.Error(w, "Failed to parse body into Call: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !knownCallType(call.Type) {
		http.Error(w, "Received an unknown call", http.StatusNotImplemented)
		return
	}
	if cerr := validateCall(call); cerr != nil {
		http.Error(w, cerr.msg, cerr.code)
		return
	}
	if call.Type == scheduler.Call_SUBSCRIBE {
		m.subscribe(w, r, call, m.log.WithField("call", call.Type.String()))
		return
	}
	// No per-call log entry: WithField allocates, and this is the hot
	// path; the few log lines of a call name what they are about.
	code, cerr := m.dispatch(r, call, m.log)
	if cerr != nil {
		http.Error(w, cerr.msg, cerr.code)
		return
	}
	w.WriteHeader(code)
}

// readBody reads at most max bytes, sized by Content-Length when the
// client sent one.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, max)
	if n := r.ContentLength; n > 0 && n <= max {
		buf := make([]byte, n)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(body)
}

// decodeCall parses a body with mesos-go's generated parser for the codec;
// it never panics on bad input (the parsers can, so it recovers at this
// edge).
func decodeCall(codec encoding.Codec, body []byte) (call *scheduler.Call, err error) {
	defer func() {
		if p := recover(); p != nil {
			call, err = nil, fmt.Errorf("malformed %s body: %v", codec.Name, p)
		}
	}()
	if len(body) == 0 {
		return nil, errors.New("empty body")
	}
	call = new(scheduler.Call)
	// The generated parsers on the body already read, not the codec's
	// decoders: the JSON one scans the whole body once more before calling
	// its parser, and the protobuf one copies the body (ioutil.ReadAll from
	// 512 bytes up): 200 MB of the 2.6 GB that launching 100,000 tasks
	// allocated (BenchmarkE2ESimulated/records).
	switch codec.Type {
	case codecs.MediaTypeJSON:
		err = call.UnmarshalJSON(body)
	case codecs.MediaTypeProtobuf:
		err = call.Unmarshal(body)
	default:
		err = fmt.Errorf("no decoder for %s", codec.Type)
	}
	if err != nil {
		return nil, err
	}
	return call, nil
}

func knownCallType(t scheduler.Call_Type) bool {
	if t == scheduler.Call_UNKNOWN {
		return false
	}
	_, ok := scheduler.Call_Type_name[int32(t)]
	return ok
}

// validateCall mirrors Mesos's validation::scheduler::call::validate: the
// body matching the type must be present and framework ids must agree.
func validateCall(c *scheduler.Call) *callError {
	if c.Type == scheduler.Call_SUBSCRIBE {
		if c.Subscribe == nil {
			return badRequest("Expecting 'subscribe' to be present")
		}
		if c.Subscribe.FrameworkInfo == nil {
			return badRequest("Expecting 'subscribe.framework_info' to be present")
		}
		fi := c.Subscribe.FrameworkInfo
		if c.FrameworkID != nil && (fi.ID == nil || fi.ID.Value != c.FrameworkID.Value) {
			return badRequest("'framework_id' differs from 'subscribe.framework_info.id'")
		}
		return nil
	}
	if c.FrameworkID == nil || c.FrameworkID.Value == "" {
		return badRequest("Expecting 'framework_id' to be present")
	}
	missing := func(name string) *callError { return badRequest("Expecting '%s' to be present", name) }
	switch c.Type {
	case scheduler.Call_ACCEPT:
		if c.Accept == nil {
			return missing("accept")
		}
	case scheduler.Call_DECLINE:
		if c.Decline == nil {
			return missing("decline")
		}
	case scheduler.Call_ACCEPT_INVERSE_OFFERS:
		if c.AcceptInverseOffers == nil {
			return missing("accept_inverse_offers")
		}
	case scheduler.Call_DECLINE_INVERSE_OFFERS:
		if c.DeclineInverseOffers == nil {
			return missing("decline_inverse_offers")
		}
	case scheduler.Call_KILL:
		if c.Kill == nil {
			return missing("kill")
		}
	case scheduler.Call_SHUTDOWN:
		if c.Shutdown == nil {
			return missing("shutdown")
		}
	case scheduler.Call_ACKNOWLEDGE:
		if c.Acknowledge == nil {
			return missing("acknowledge")
		}
		if len(c.Acknowledge.UUID) != 16 {
			return badRequest("Failed to parse UUID: expecting 16 bytes, got %d", len(c.Acknowledge.UUID))
		}
	case scheduler.Call_ACKNOWLEDGE_OPERATION_STATUS:
		if c.AcknowledgeOperationStatus == nil {
			return missing("acknowledge_operation_status")
		}
	case scheduler.Call_RECONCILE:
		if c.Reconcile == nil {
			return missing("reconcile")
		}
	case scheduler.Call_RECONCILE_OPERATIONS:
		if c.ReconcileOperations == nil {
			return missing("reconcile_operations")
		}
	case scheduler.Call_MESSAGE:
		if c.Message == nil {
			return missing("message")
		}
	case scheduler.Call_REQUEST:
		if c.Request == nil {
			return missing("request")
		}
	case scheduler.Call_UPDATE_FRAMEWORK:
		if c.UpdateFramework == nil {
			return missing("update_framework")
		}
		if c.UpdateFramework.FrameworkInfo.ID == nil || c.UpdateFramework.FrameworkInfo.ID.Value != c.FrameworkID.Value {
			return badRequest("'framework_id' differs from 'update_framework.framework_info.id'")
		}
	}
	return nil
}
