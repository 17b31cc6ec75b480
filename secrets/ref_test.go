package secrets

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/flotilla-sched/flotilla/appspec"
)

func TestParseRef(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		source  string
		want    Ref
		wantErr string
	}{
		{"kv2 path", "secret/db#password", Ref{"secret/db", "password"}, ""},
		{"deep path", "kv1/app/team/db#user", Ref{"kv1/app/team/db", "user"}, ""},
		{"slashes trimmed like the CLI", "/secret/db/#password", Ref{"secret/db", "password"}, ""},
		{"field with dots and dashes", "secret/db#tls.key-pem", Ref{"secret/db", "tls.key-pem"}, ""},
		{"empty", "", Ref{}, "empty source"},
		{"no field", "secret/db", Ref{}, `has no "#<field>"`},
		{"empty field", "secret/db#", Ref{}, "empty field"},
		{"two hashes", "secret/db#a#b", Ref{}, "more than one '#'"},
		{"empty path", "#password", Ref{}, "empty vault path"},
		{"mount only", "secret#password", Ref{}, "names only a mount"},
		{"empty segment", "secret//db#password", Ref{}, "empty or dot segment"},
		{"dot dot", "secret/../sys#x", Ref{}, "empty or dot segment"},
		{"space in path", "secret/my db#password", Ref{}, `path contains " "`},
		{"query in path", "secret/db?version=1#password", Ref{}, `path contains "?"`},
		{"newline in field", "secret/db#pass\nword", Ref{}, `field contains "\n"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRef(c.source)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.HasPrefix(err.Error(), "secrets: ") {
					t.Fatalf("ParseRef(%q) err = %v, want one containing %q", c.source, err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ParseRef(%q) = %v, %v; want %v", c.source, got, err, c.want)
			}
			if got.String() != c.want.Path+"#"+c.want.Field {
				t.Fatalf("String() = %q", got.String())
			}
		})
	}
}

func TestEnvRefsAndPaths(t *testing.T) {
	t.Parallel()
	app := &appspec.App{
		ID: "/web",
		Env: map[string]appspec.EnvValue{
			"PLAIN":   {Value: "x"},
			"DB_PASS": {Secret: "db"},
			"DB_USER": {Secret: "dbuser"},
			"GHOST":   {Secret: "ghost"},
		},
		Secrets: map[string]appspec.Secret{
			"db":     {Source: "secret/db#password"},
			"dbuser": {Source: "secret/db#user"},
			"api":    {Source: "kv1/api#key"},
			"broken": {Source: "secret/db"},
		},
	}
	env, refs, problems := envRefs(app)
	if want := map[string]string{"DB_PASS": "db", "DB_USER": "dbuser"}; !reflect.DeepEqual(env, want) {
		t.Fatalf("env = %v, want %v", env, want)
	}
	if len(refs) != 3 {
		t.Fatalf("refs = %v", refs)
	}
	var got []string
	for _, p := range problems {
		if !errors.Is(p.Err, ErrBadRef) {
			t.Fatalf("%s: not ErrBadRef: %v", p.Path, p.Err)
		}
		got = append(got, p.String())
	}
	want := []string{
		`/env/GHOST: secret ghost: not declared in "secrets" (referenced by env GHOST)`,
		`/secrets/broken/source: secret broken: source "secret/db" has no "#<field>", want "<vault path>#<field>"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems =\n%q\nwant\n%q", got, want)
	}
	if p := Paths(app); !reflect.DeepEqual(p, []string{"kv1/api", "secret/db"}) {
		t.Fatalf("Paths = %v", p)
	}
}
