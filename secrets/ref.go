package secrets

import (
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/flotilla-sched/flotilla/appspec"
)

// Ref points at one field of a Vault secret.
type Ref struct {
	// Path is the secret's path as `vault kv get` takes it, mount included
	// and without "data/": "secret/db", "kv1/app/db".
	Path string
	// Field is the key inside the secret's data.
	Field string
}

func (r Ref) String() string { return r.Path + "#" + r.Field }

// ParseRef parses Marathon's "<vault path>#<field>". Leading and trailing
// slashes of the path are dropped as the vault CLI does; everything else
// that the CLI would send verbatim but Vault would misread (empty or dot
// segments, whitespace, '?') is refused so the app's author learns at
// submit time rather than at launch.
func ParseRef(source string) (Ref, error) {
	if source == "" {
		return Ref{}, fmt.Errorf("secrets: empty source, want \"<vault path>#<field>\"")
	}
	path, field, ok := strings.Cut(source, "#")
	if !ok {
		return Ref{}, fmt.Errorf("secrets: source %q has no \"#<field>\", want \"<vault path>#<field>\"", source)
	}
	if strings.Contains(field, "#") {
		return Ref{}, fmt.Errorf("secrets: source %q has more than one '#'", source)
	}
	if field == "" {
		return Ref{}, fmt.Errorf("secrets: source %q has an empty field after '#'", source)
	}
	if i := strings.IndexFunc(field, badRune); i >= 0 {
		return Ref{}, fmt.Errorf("secrets: source %q: field contains %q", source, field[i:i+1])
	}
	path = strings.Trim(path, "/")
	if path == "" {
		return Ref{}, fmt.Errorf("secrets: source %q has an empty vault path", source)
	}
	if i := strings.IndexFunc(path, func(r rune) bool { return badRune(r) || r == '?' }); i >= 0 {
		return Ref{}, fmt.Errorf("secrets: source %q: path contains %q", source, path[i:i+1])
	}
	segs := strings.Split(path, "/")
	if len(segs) < 2 {
		return Ref{}, fmt.Errorf("secrets: source %q: path %q names only a mount, want \"<mount>/<secret>\"", source, path)
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return Ref{}, fmt.Errorf("secrets: source %q: path %q has an empty or dot segment", source, path)
		}
	}
	return Ref{Path: path, Field: field}, nil
}

func badRune(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// envRefs maps each environment variable of app that names a secret to the
// secret's name, and each declared secret to its parsed Ref. Problems are
// returned for what does not parse; they are sorted by Path.
func envRefs(app *appspec.App) (env map[string]string, refs map[string]Ref, problems []Problem) {
	env = map[string]string{}
	refs = map[string]Ref{}
	for name, s := range app.Secrets {
		r, err := ParseRef(s.Source)
		if err != nil {
			problems = append(problems, Problem{
				Path:   "/secrets/" + name + "/source",
				Secret: name,
				Err:    &Error{Secret: name, Kind: ErrBadRef, Reason: strings.TrimPrefix(err.Error(), "secrets: ")},
			})
			continue
		}
		refs[name] = r
	}
	for k, v := range app.Env {
		if v.Secret == "" {
			continue
		}
		if _, ok := app.Secrets[v.Secret]; !ok {
			problems = append(problems, Problem{
				Path:   "/env/" + k,
				Secret: v.Secret,
				Err:    &Error{Secret: v.Secret, Kind: ErrBadRef, Reason: fmt.Sprintf("not declared in \"secrets\" (referenced by env %s)", k)},
			})
			continue
		}
		env[k] = v.Secret
	}
	sort.Slice(problems, func(i, j int) bool { return problems[i].Path < problems[j].Path })
	return env, refs, problems
}

// Paths returns the sorted, distinct Vault paths app's secrets refer to;
// the framework hands their union to a Watcher.
func Paths(app *appspec.App) []string {
	_, refs, _ := envRefs(app)
	seen := map[string]bool{}
	var out []string
	for _, r := range refs {
		if !seen[r.Path] {
			seen[r.Path] = true
			out = append(out, r.Path)
		}
	}
	sort.Strings(out)
	return out
}
