package appspec

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateRoles(t *testing.T) {
	t.Parallel()
	public := Limits{Role: "slave_public"}
	gpus := Limits{GPUResources: true}
	cases := []struct {
		name     string
		body     string
		l        Limits
		wantPath string // "" = valid
		wantMsg  string
	}{
		{"slave_public accepted by a slave_public framework", `{"id":"a","cmd":"x","acceptedResourceRoles":["slave_public"]}`, public, "", ""},
		{"* and the role", `{"id":"a","cmd":"x","acceptedResourceRoles":["*","slave_public"]}`, public, "", ""},
		{"unreserved only", `{"id":"a","cmd":"x","acceptedResourceRoles":["*"]}`, public, "", ""},
		{"the framework's role named", `{"id":"a","cmd":"x","role":"slave_public"}`, public, "", ""},
		{"a role the framework is not subscribed with", `{"id":"a","cmd":"x","acceptedResourceRoles":["slave_public"]}`, Limits{}, "/acceptedResourceRoles", "acceptedResourceRoles can only contain * (got \"slave_public\")"},
		{"another role than the framework's", `{"id":"a","cmd":"x","acceptedResourceRoles":["*","batch"]}`, public, "/acceptedResourceRoles", "acceptedResourceRoles can only contain * and slave_public (got \"batch\")"},
		{"app role other than the framework's", `{"id":"a","cmd":"x","role":"batch"}`, public, "/role", `got "batch", expected one of: [slave_public]`},
		{"app role * under a slave_public framework", `{"id":"a","cmd":"x","role":"*"}`, public, "/role", `got "*", expected one of: [slave_public]`},
		{"role name with a space", `{"id":"a","cmd":"x","acceptedResourceRoles":["a b"]}`, Limits{Role: "a b"}, "/acceptedResourceRoles/0", "must not include a space"},
		{"empty role name", `{"id":"a","cmd":"x","acceptedResourceRoles":[""]}`, public, "/acceptedResourceRoles/0", `must not be ""`},
		{"user", `{"id":"a","cmd":"x","user":"nobody"}`, Limits{}, "", ""},
		{"gpus without the feature", `{"id":"a","cmd":"x","gpus":1}`, Limits{}, "/", "Feature gpu_resources is not enabled"},
		{"gpus with the feature", `{"id":"a","cmd":"x","gpus":2}`, gpus, "", ""},
		{"gpus in a Mesos container", `{"id":"a","cmd":"x","gpus":1,"container":{"type":"MESOS","docker":{"image":"i"}}}`, gpus, "", ""},
		{"gpus in a Docker container", `{"id":"a","cmd":"x","gpus":1,"container":{"type":"DOCKER","docker":{"image":"i"}}}`, gpus, "/", "GPU resources only work with the Mesos containerizer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := Decode(strings.NewReader(tc.body))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			err = a.ValidateWith(tc.l)
			if tc.wantPath == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a ValidationError at %s", err, tc.wantPath)
			}
			for _, d := range ve.Details {
				if d.Path == tc.wantPath && strings.Contains(strings.Join(d.Errors, "; "), tc.wantMsg) {
					return
				}
			}
			t.Fatalf("details %+v, want %s: %q", ve.Details, tc.wantPath, tc.wantMsg)
		})
	}
}
