package secrets

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

var discard = logging.Component(logging.Discard(), "secrets")

// eventually polls cond for up to d; tests use it only to wait for real
// Vault or a goroutine, never to assert a duration.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestResolveKV(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ctx := testCtx(t)
	db := b.putV2(t, "db", map[string]any{"password": "pw-v1", "port": 5432, "tls": true})
	gone := b.putV2(t, "gone", map[string]any{"x": "y"})
	if err := b.root.KVv2("secret").Delete(ctx, b.prefix+"/gone"); err != nil {
		t.Fatal(err)
	}
	kv1 := b.kv1Mount(t)
	if _, err := b.root.Logical().Write(kv1+"/app/api", map[string]any{"key": "k1"}); err != nil {
		t.Fatal(err)
	}
	v := newVault(t, b.tokenConfig(), clock.Real{}, nil)
	r := NewResolver(v, fakeClock(), 0, discard)
	cases := []struct {
		name, source, want string
		kind               error
		msg                string
	}{
		{name: "kv2 string", source: db + "#password", want: "pw-v1"},
		{name: "kv2 number", source: db + "#port", want: "5432"},
		{name: "kv2 bool", source: db + "#tls", want: "true"},
		{name: "kv1", source: kv1 + "/app/api#key", want: "k1"},
		{name: "kv2 missing field", source: db + "#nope", kind: ErrNotFound, msg: `secret s: field "nope" not found at ` + db},
		{name: "kv2 missing path", source: db + "x#p", kind: ErrNotFound, msg: "secret s: not found at " + db + "x"},
		{name: "kv2 deleted version", source: gone + "#x", kind: ErrNotFound, msg: "secret s: not found at " + gone},
		{name: "kv1 missing path", source: kv1 + "/nope#key", kind: ErrNotFound, msg: "secret s: not found at " + kv1 + "/nope"},
		{name: "kv1 missing field", source: kv1 + "/app/api#nope", kind: ErrNotFound, msg: `secret s: field "nope" not found at ` + kv1 + "/app/api"},
		{name: "no such mount", source: "nomount-" + b.prefix + "/db#x", kind: ErrPermissionDenied, msg: "secret s: permission denied at nomount-" + b.prefix + "/db"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ref, err := ParseRef(c.source)
			if err != nil {
				t.Fatal(err)
			}
			vals, err := r.ResolveRefs(ctx, map[string]Ref{"s": ref})
			if c.kind != nil {
				if !errors.Is(err, c.kind) || err.Error() != c.msg || vals != nil {
					t.Fatalf("err = %v (vals %v), want %v %q", err, vals, c.kind, c.msg)
				}
				return
			}
			if err != nil || vals["s"].Reveal() != c.want {
				t.Fatalf("got %q, %v; want %q", vals["s"].Reveal(), err, c.want)
			}
		})
	}
	t.Run("versions", func(t *testing.T) {
		t.Parallel()
		for path, want := range map[string]int{db: 1, kv1 + "/app/api": 0} {
			if got, err := v.Version(ctx, path); err != nil || got != want {
				t.Errorf("Version(%s) = %d, %v; want %d", path, got, err, want)
			}
		}
	})
}

func TestAppRolePolicy(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ctx := testCtx(t)
	allowed := b.putV2(t, "allowed", map[string]any{"password": "ok"})
	denied := b.putV2(t, "denied", map[string]any{"password": "no"})
	cfg := b.approle(t, "1h", "2h", allowed)
	v := newVault(t, cfg, clock.Real{}, nil)
	r := NewResolver(v, fakeClock(), 0, discard)
	app := &appspec.App{
		Env: map[string]appspec.EnvValue{"A": {Secret: "a"}},
		Secrets: map[string]appspec.Secret{
			"a": {Source: allowed + "#password"},
		},
	}
	env, err := r.Resolve(ctx, app)
	if err != nil || env["A"].Reveal() != "ok" {
		t.Fatalf("allowed: %v", err)
	}
	if st := v.Status(); !st.LoggedIn || st.Logins != 1 || st.Expires.IsZero() {
		t.Fatalf("status after lazy approle login = %+v", st)
	}
	app.Env["D"] = appspec.EnvValue{Secret: "d"}
	app.Secrets["d"] = appspec.Secret{Source: denied + "#password"}
	env, err = r.Resolve(ctx, app)
	if want := "secret d: permission denied at " + denied; !errors.Is(err, ErrPermissionDenied) || err.Error() != want || env != nil {
		t.Fatalf("denied: %v, want %q", err, want)
	}
	if ver, err := v.Version(ctx, allowed); err != nil || ver != 1 {
		t.Fatalf("Version(allowed) = %d, %v", ver, err)
	}

	t.Run("bad secret_id", func(t *testing.T) {
		t.Parallel()
		bad := cfg
		bad.SecretIDFile = writeFile(t, "not-the-secret-id-"+randHex(t, 4))
		bv := newVault(t, bad, clock.Real{}, discard)
		err := bv.Login(ctx)
		if !errors.Is(err, ErrPermissionDenied) || strings.Contains(err.Error(), "not-the-secret-id") {
			t.Fatalf("Login with a bad secret_id = %v", err)
		}
		_, err = NewResolver(bv, fakeClock(), 0, discard).ResolveRefs(ctx, map[string]Ref{"a": {Path: allowed, Field: "password"}})
		want := "secret a: permission denied at " + allowed + " (approle login refused at auth/" + cfg.AppRoleMount + "/login)"
		if !errors.Is(err, ErrPermissionDenied) || err.Error() != want {
			t.Fatalf("resolve with a bad secret_id = %v, want %q", err, want)
		}
	})
}

func TestTokenFileLogin(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ctx := testCtx(t)
	p := b.putV2(t, "db", map[string]any{"password": "pw"})
	tok, err := b.root.Auth().Token().Create(&apiTokenRequest{TTL: "10m", Renewable: new(true)})
	if err != nil {
		t.Fatal(err)
	}
	v := newVault(t, Config{Address: b.addr, TokenFile: writeFile(t, tok.Auth.ClientToken+"\n")}, clock.Real{}, nil)
	e, err := v.Read(ctx, p)
	if err != nil || e.Fields["password"].Reveal() != "pw" || e.Version != 1 {
		t.Fatalf("read with token file: %v", err)
	}
	st := v.Status()
	if !st.LoggedIn || !st.Renewable || st.Expires.IsZero() {
		t.Fatalf("status = %+v", st)
	}
	bad := newVault(t, Config{Address: b.addr, Token: "s.not-a-token"}, clock.Real{}, nil)
	if err := bad.Login(ctx); !errors.Is(err, ErrPermissionDenied) || strings.Contains(err.Error(), "not-a-token") {
		t.Fatalf("Login with a bad token = %v", err)
	}
}

// TestRenewShortTTL proves in real seconds that a 6 s token outlives its
// TTL because Run renews it, while the same kind of token left alone dies.
// (6 s rather than less: renewal comes at 2/3 of the TTL, and a loaded CI
// machine can delay it by a second or more.)
func TestRenewShortTTL(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ctx := testCtx(t)
	p := b.putV2(t, "db", map[string]any{"password": "pw"})
	mk := func() string {
		s, err := b.root.Auth().Token().Create(&apiTokenRequest{TTL: "6s", ExplicitMaxTTL: "1m", Renewable: new(true)})
		if err != nil {
			t.Fatal(err)
		}
		return s.Auth.ClientToken
	}
	renewed, control := mk(), mk()
	v := newVault(t, Config{Address: b.addr, Token: renewed}, clock.Real{}, nil)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- v.Run(rctx) }()
	time.Sleep(9 * time.Second) // well past the original 6 s TTL
	if _, err := b.root.Auth().Token().LookupWithContext(ctx, control); err == nil {
		t.Fatal("the control token is still alive after its TTL; the test proves nothing")
	}
	if _, err := b.root.Auth().Token().LookupWithContext(ctx, renewed); err != nil {
		t.Fatalf("renewed token died: %v", err)
	}
	if _, err := v.Read(ctx, p); err != nil {
		t.Fatalf("read after the original TTL: %v", err)
	}
	if st := v.Status(); st.Renewals < 1 || st.Logins != 1 {
		t.Fatalf("status = %+v, want renewals and one login", st)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestAppRoleRelogin: the role's max TTL (3 s) stops renewal, so Run must
// log in again to keep reading.
func TestAppRoleRelogin(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ctx := testCtx(t)
	p := b.putV2(t, "db", map[string]any{"password": "pw"})
	v := newVault(t, b.approle(t, "2s", "3s", p), clock.Real{}, nil)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = v.Run(rctx) }()
	eventually(t, 15*time.Second, "a second approle login", func() bool { return v.Status().Logins >= 2 })
	if _, err := v.Read(ctx, p); err != nil {
		t.Fatalf("read after two max TTLs: %v", err)
	}
}

// TestRenewalSchedule steps a fake clock: Run renews at two thirds of the
// TTL, not before.
func TestRenewalSchedule(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ctx := testCtx(t)
	s, err := b.root.Auth().Token().Create(&apiTokenRequest{TTL: "1h", Renewable: new(true)})
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeClock()
	v := newVault(t, Config{Address: b.addr, Token: s.Auth.ClientToken}, clk, nil)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = v.Run(rctx) }()
	eventually(t, 5*time.Second, "login and an armed timer", func() bool { return v.Status().LoggedIn && clk.Waiters() == 1 })
	clk.Step(39 * time.Minute)
	if st := v.Status(); st.Renewals != 0 || clk.Waiters() != 1 {
		t.Fatalf("renewed before two thirds of the TTL: %+v", st)
	}
	clk.Step(2 * time.Minute)
	eventually(t, 5*time.Second, "a renewal", func() bool { return v.Status().Renewals == 1 })
	if exp := v.Status().Expires; !exp.After(clk.Now().Add(59 * time.Minute)) {
		t.Fatalf("expiry after renewal = %v, now %v", exp, clk.Now())
	}
}
