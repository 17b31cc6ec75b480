package appspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
)

// MaxBodyBytes is the largest app definition Decode reads (1 MiB).
const MaxBodyBytes = 1 << 20

var (
	// ErrTooLarge: the app definition is over MaxBodyBytes. The API answers 413.
	ErrTooLarge = errors.New("appspec: app definition is larger than 1 MiB; keep large data out of the spec (fetch it at start or keep it in Vault)")
	// ErrMalformed is wrapped by a *ValidationError whose body is not JSON
	// or has a value of the wrong type. The API answers 400; other
	// ValidationErrors are 422.
	ErrMalformed = errors.New("appspec: malformed app JSON")
)

var (
	typeOfApp         = reflect.TypeOf(App{})
	typeOfEnvValue    = reflect.TypeOf(EnvValue{})
	typeOfUnreachable = reflect.TypeOf(UnreachableStrategy{})
	typeOfContainer   = reflect.TypeOf(Container{})
	typeOfVolume      = reflect.TypeOf(Volume{})
	typeOfPersistent  = reflect.TypeOf(PersistentVolume{})
	typeOfDocker      = reflect.TypeOf(Docker{})
	typeOfHealthCheck = reflect.TypeOf(HealthCheck{})
)

// unsupported lists Marathon fields Flotilla knows and refuses. An empty
// value ([], {}, null, "", false, 0) or an allowed value is accepted and
// dropped, because Marathon's own GET output carries them empty and a
// client that round-trips it must not be refused.
type unsupported struct {
	hint    string
	allowed func(v any) bool
}

var unsupportedFields = map[reflect.Type]map[string]unsupported{
	typeOfApp: {
		"storeUrls":    {hint: "Flotilla has no artifact store"},
		"dependencies": {hint: "Flotilla deploys each app on its own; order deployments in your pipeline"},
		"ipAddress":    {hint: "the pre-1.5 ipAddress field is not read; use networks: [{\"mode\": \"container\", \"name\": …}] with container.portMappings"},
		"executor":     {hint: "only the default executor is supported", allowed: func(v any) bool { return v == "//cmd" }},
		"tty":          {hint: "tasks get no TTY"},
		// Marathon 1.6+'s Mesos checks (results shown, never acted on)
		// and 1.9+'s resource limits and executor resources: known
		// fields, so a Marathon export gets the reason, not "unknown".
		"check":             {hint: "Mesos checks are not supported; use healthChecks or readinessChecks"},
		"resourceLimits":    {hint: "tasks are limited to the resources they ask for (cpus, mem)"},
		"executorResources": {hint: "the default executor's resources are the agent's"},
	},
	typeOfContainer: {
		"linuxInfo": {hint: "Linux capabilities and seccomp settings are not supported"},
	},
	typeOfDocker: {
		"credential": {hint: "registry credentials are configured on the agents"},
		"pullConfig": {hint: "registry credentials are configured on the agents"},
	},
	typeOfVolume: {
		"external": {hint: "external volumes (DVDI/REX-Ray) are not supported; use a host path (hostPath)"},
		"secret":   {hint: "file-based secrets are not supported; reference the secret in env ({\"secret\": …})"},
	},
	typeOfPersistent: {
		"maxSize":     {hint: "maxSize selects among mount disks, which Flotilla's agents do not offer; only root volumes of a fixed size are supported"},
		"constraints": {hint: "persistent volume constraints select among path and mount disks, which Flotilla's agents do not offer; only root volumes are supported"},
		"profileName": {hint: "disk profiles (CSI) are not supported; only root volumes are supported"},
	},
	typeOfGroup: {
		"pods": {hint: "pods are written through /v2/pods and are read-only in a group (as in Marathon); leave pods out of the group body"},
	},
	typeOfHealthCheck: {
		"ipProtocol": {hint: "health checks use IPv4", allowed: func(v any) bool { return v == "IPv4" }},
		// Marathon 0.x's name for a fixed health check port.
		"overridePort": {hint: "Marathon 0.x's overridePort is not read; use port"},
	},
}

// readOnlyFields appear in Marathon's GET /v2/apps/{id} output. They are
// status, not spec, so they are accepted and dropped: a client may PUT back
// what it read.
var readOnlyFields = map[string]bool{
	"versionInfo": true, "tasksStaged": true, "tasksRunning": true, "tasksHealthy": true,
	"tasksUnhealthy": true, "deployments": true, "tasks": true, "lastTaskFailure": true,
	"readinessCheckResults": true, "taskStats": true, "counts": true,
}

// IsEmptyJSON says whether a decoded JSON value (numbers as json.Number)
// is empty: null, "", false, 0, [] or {}. Such values of refused Marathon
// fields are accepted, since Marathon's GET answers carry them.
func IsEmptyJSON(v any) bool { return isEmpty(v) }

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case json.Number:
		f, err := x.Float64()
		return err == nil && f == 0
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// Decode reads one app definition strictly: at most MaxBodyBytes, a single
// JSON object, no unknown field, no Marathon field Flotilla does not
// support, every value of the right type. Problems come back as a
// *ValidationError naming each field by its JSON pointer
// (/container/docker/image); an oversized body is ErrTooLarge. The app
// returned has Marathon's defaults and the canonical id, and still needs
// Validate.
func Decode(r io.Reader) (*App, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("appspec: read app definition: %w", err)
	}
	if len(b) > MaxBodyBytes {
		return nil, ErrTooLarge
	}
	return decode(b)
}

// checkJSON checks that b is one JSON object of type t, every field known
// and of the right type, and names every problem by its path. what names
// the object in the message ("app", "group").
func checkJSON(b []byte, t reflect.Type, what string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return malformed("/", jsonErrText(err, b))
	}
	if _, err := dec.Token(); err != io.EOF {
		return malformed("/", "unexpected data after the "+what+" object; send one JSON object")
	}
	w := &walker{}
	w.walk(tree, t, "")
	if w.typeErr {
		w.v.Message = "Invalid JSON"
		w.v.malformed = true
		return &w.v
	}
	if len(w.v.Details) > 0 {
		return &w.v
	}
	return nil
}

func decode(b []byte) (*App, error) {
	if err := checkJSON(b, typeOfApp, "app"); err != nil {
		return nil, err
	}
	app := Defaults()
	if err := json.Unmarshal(b, app); err != nil {
		// The walk checked every type, so this is a bug in the walk.
		return nil, malformed("/", err.Error())
	}
	if app.Pod != nil {
		// App.Pod is how the scheduler carries a pod, not an app field.
		return nil, &ValidationError{Message: "Object is not valid", Details: []Detail{{Path: "/pod", Errors: []string{"unknown field; pods are written through /v2/pods"}}}}
	}
	app.Normalize()
	app.residentDefaults(b)
	return app, nil
}

func jsonErrText(err error, b []byte) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(b[:min(int(se.Offset), len(b))], []byte("\n"))
		return fmt.Sprintf("%s (line %d, byte %d)", strings.TrimPrefix(se.Error(), "json: "), line, se.Offset)
	}
	if errors.Is(err, io.EOF) {
		return "empty body"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func malformed(path, msg string) *ValidationError {
	return &ValidationError{Message: "Invalid JSON", Details: []Detail{{Path: path, Errors: []string{msg}}}, malformed: true}
}

// walker checks a decoded JSON tree against the Go types, so that every
// problem is reported with its full path (encoding/json stops at the first
// and loses array indices).
type walker struct {
	v       ValidationError
	typeErr bool
}

func (w *walker) typeError(path, want string, got any) {
	w.typeErr = true
	w.v.add(pathOrRoot(path), fmt.Sprintf("expected %s, got %s", want, jsonKind(got)))
}

func pathOrRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "the number " + x.String()
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// pointerToken escapes a key for a JSON pointer (RFC 6901).
// pointerEscaper is built once: building a Replacer allocates ~40 KB,
// which every label and env name of every validated app paid (380 MB to
// restore 10,000 apps in the API's list benchmark).
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func pointerToken(k string) string {
	return pointerEscaper.Replace(k)
}

func (w *walker) walk(v any, t reflect.Type, path string) {
	if t == typeOfEnvValue {
		// An env entry has no "absent" form: null is a type error.
		w.walkEnv(v, path)
		return
	}
	// Elsewhere null is "absent": the default (or nothing) applies.
	if v == nil {
		return
	}
	switch t {
	case typeOfUnreachable:
		if s, ok := v.(string); ok {
			if s != "disabled" {
				w.typeErr = true
				w.v.add(path, fmt.Sprintf("expected \"disabled\" or an object, got the string %q", s))
			}
			return
		}
	}
	switch t.Kind() {
	case reflect.Pointer:
		w.walk(v, t.Elem(), path)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			w.typeError(path, "an object", v)
			return
		}
		fields := jsonFields(t)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			p := path + "/" + pointerToken(k)
			if f, ok := fields[k]; ok {
				w.walk(m[k], f.Type, p)
				continue
			}
			if t == typeOfApp && readOnlyFields[k] {
				continue
			}
			if u, ok := unsupportedFields[t][k]; ok {
				if isEmpty(m[k]) || (u.allowed != nil && u.allowed(m[k])) {
					continue
				}
				w.v.add(p, "not supported by Flotilla: "+u.hint)
				continue
			}
			w.v.add(p, unknownField(k, fields, path))
		}
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			w.typeError(path, "an array", v)
			return
		}
		for i, e := range list {
			w.walk(e, t.Elem(), fmt.Sprintf("%s/%d", path, i))
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			w.typeError(path, "an object", v)
			return
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			w.walk(m[k], t.Elem(), path+"/"+pointerToken(k))
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			w.typeError(path, "a string", v)
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			w.typeError(path, "a boolean", v)
		}
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			w.typeError(path, "a number", v)
			return
		}
		if _, err := n.Float64(); err != nil {
			w.typeError(path, "a number", v)
		}
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			w.typeError(path, "an integer", v)
			return
		}
		i, err := n.Int64()
		if err != nil || i < math.MinInt32 || i > math.MaxInt32 {
			w.typeError(path, "an integer", v)
		}
	case reflect.Uint32:
		n, ok := v.(json.Number)
		if !ok {
			w.typeError(path, "an integer from 0 to 4294967295", v)
			return
		}
		i, err := n.Int64()
		if err != nil || i < 0 || i > math.MaxUint32 {
			w.typeError(path, "an integer from 0 to 4294967295", v)
		}
	default:
		w.v.add(path, fmt.Sprintf("appspec cannot check a %s field", t.Kind()))
	}
}

func (w *walker) walkEnv(v any, path string) {
	switch x := v.(type) {
	case string:
		return
	case map[string]any:
		if _, ok := x["secret"].(string); ok && len(x) == 1 {
			return
		}
	}
	w.typeError(path, `a string or {"secret": "<name>"}`, v)
}

type field struct{ Type reflect.Type }

// jsonFields maps the exact JSON names of a struct's fields; unlike
// encoding/json, Decode does not match names case-insensitively.
func jsonFields(t reflect.Type) map[string]field {
	out := map[string]field{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = field{Type: f.Type}
	}
	return out
}

// unknownField names the likely intended field: a case slip, Marathon's
// older names without the "Seconds" suffix (interval, timeout), or a field
// of an object one level down (container.forcePullImage for
// container.docker.forcePullImage). path is the object's JSON pointer.
func unknownField(k string, fields map[string]field, path string) string {
	for name := range fields {
		if strings.EqualFold(name, k) || strings.EqualFold(name, k+"Seconds") {
			return fmt.Sprintf("unknown field; did you mean %q?", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		t := fields[name].Type
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			continue
		}
		if _, ok := jsonFields(t)[k]; ok {
			return fmt.Sprintf("unknown field here; %s belongs in %s/%s", k, path, name)
		}
	}
	return "unknown field; check the spelling (field names are case-sensitive) or remove it"
}
