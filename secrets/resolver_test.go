package secrets

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
)

func TestCacheHitMiss(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ctx := testCtx(t)
	db := b.putV2(t, "db", map[string]any{"password": "pw-1", "user": "app"})
	api := b.putV2(t, "api", map[string]any{"key": "k"})
	clk := fakeClock()
	cb := &countingBackend{Backend: newVault(t, b.tokenConfig(), clock.Real{}, nil)}
	r := NewResolver(cb, clk, 10*time.Second, discard)
	app := &appspec.App{
		Env: map[string]appspec.EnvValue{"P": {Secret: "p"}, "U": {Secret: "u"}, "K": {Secret: "k"}},
		Secrets: map[string]appspec.Secret{
			"p": {Source: db + "#password"}, "u": {Source: db + "#user"}, "k": {Source: api + "#key"},
		},
	}
	resolve := func() string {
		t.Helper()
		env, err := r.Resolve(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		return env["P"].Reveal()
	}
	steps := []struct {
		name      string
		before    func()
		want      string
		dbReads   int
		apiReads  int
		hits, mis uint64
	}{
		{name: "first launch reads each path once", want: "pw-1", dbReads: 1, apiReads: 1, hits: 0, mis: 2},
		{name: "second launch is served from the cache", want: "pw-1", dbReads: 1, apiReads: 1, hits: 2, mis: 2},
		{name: "a rotation is not seen while cached", before: func() { b.putV2(t, "db", map[string]any{"password": "pw-2", "user": "app"}) },
			want: "pw-1", dbReads: 1, apiReads: 1, hits: 4, mis: 2},
		{name: "invalidate re-reads that path only", before: func() { r.Invalidate(db) }, want: "pw-2", dbReads: 2, apiReads: 1, hits: 5, mis: 3},
		{name: "just before the TTL still cached", before: func() { clk.Step(9 * time.Second) }, want: "pw-2", dbReads: 2, apiReads: 1, hits: 7, mis: 3},
		{name: "at the TTL both re-read", before: func() { clk.Step(time.Second) }, want: "pw-2", dbReads: 3, apiReads: 2, hits: 7, mis: 5},
	}
	// Steps depend on each other, so they run in order, not in parallel.
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		got := resolve()
		st := r.Stats()
		if got != s.want || cb.count(db) != s.dbReads || cb.count(api) != s.apiReads || st.Hits != s.hits || st.Misses != s.mis {
			t.Fatalf("%s: value %q reads db=%d api=%d stats %+v; want %q db=%d api=%d hits=%d misses=%d",
				s.name, got, cb.count(db), cb.count(api), st, s.want, s.dbReads, s.apiReads, s.hits, s.mis)
		}
	}
}

func TestConcurrentMissesReadOnce(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ctx := testCtx(t)
	db := b.putV2(t, "db", map[string]any{"password": "pw"})
	cb := &countingBackend{Backend: newVault(t, b.tokenConfig(), clock.Real{}, nil)}
	r := NewResolver(cb, fakeClock(), 0, discard)
	ref := Ref{Path: db, Field: "password"}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			v, err := r.ResolveRefs(ctx, map[string]Ref{"db": ref})
			if err == nil && v["db"].Reveal() != "pw" {
				err = errors.New("wrong value")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := cb.count(db); n != 1 {
		t.Fatalf("50 concurrent launches read Vault %d times, want 1", n)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ctx := testCtx(t)
	ok := b.putV2(t, "ok", map[string]any{"password": "pw"})
	denied := b.putV2(t, "denied", map[string]any{"password": "pw"})
	v := newVault(t, b.approle(t, "1h", "2h", ok), clock.Real{}, nil)
	app := &appspec.App{
		Env: map[string]appspec.EnvValue{
			"OK": {Secret: "ok"}, "DENIED": {Secret: "denied"}, "GHOST": {Secret: "ghost"}, "PLAIN": {Value: "x"},
		},
		Secrets: map[string]appspec.Secret{
			"ok":      {Source: ok + "#password"},
			"denied":  {Source: denied + "#password"},
			"nofield": {Source: ok + "#user"},
			"absent":  {Source: ok + "-absent#password"},
			"bad":     {Source: "secret/x"},
		},
	}
	cases := []struct {
		name    string
		backend Backend
		want    []string
		kinds   []error
		unavail bool
	}{
		{name: "vault answers", backend: v, want: []string{
			`/env/GHOST: secret ghost: not declared in "secrets" (referenced by env GHOST)`,
			"/secrets/absent/source: secret absent: permission denied at " + ok + "-absent",
			`/secrets/bad/source: secret bad: source "secret/x" has no "#<field>", want "<vault path>#<field>"`,
			"/secrets/denied/source: secret denied: permission denied at " + denied,
			`/secrets/nofield/source: secret nofield: field "user" not found at ` + ok,
		}, kinds: []error{ErrBadRef, ErrPermissionDenied, ErrBadRef, ErrPermissionDenied, ErrNotFound}},
		{name: "vault unreachable checks references only", backend: newVault(t, Config{Address: "http://127.0.0.1:1", Token: "t"}, clock.Real{}, nil),
			want: []string{
				`/env/GHOST: secret ghost: not declared in "secrets" (referenced by env GHOST)`,
				`/secrets/bad/source: secret bad: source "secret/x" has no "#<field>", want "<vault path>#<field>"`,
			}, kinds: []error{ErrBadRef, ErrBadRef}, unavail: true},
		{name: "no vault configured", backend: nil, want: []string{
			`/env/GHOST: secret ghost: not declared in "secrets" (referenced by env GHOST)`,
			"/secrets/absent/source: secret absent: no vault configured (set VAULT_ADDR and VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID_FILE)",
			`/secrets/bad/source: secret bad: source "secret/x" has no "#<field>", want "<vault path>#<field>"`,
			"/secrets/denied/source: secret denied: no vault configured (set VAULT_ADDR and VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID_FILE)",
			"/secrets/nofield/source: secret nofield: no vault configured (set VAULT_ADDR and VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID_FILE)",
			"/secrets/ok/source: secret ok: no vault configured (set VAULT_ADDR and VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID_FILE)",
		}, kinds: []error{ErrBadRef, ErrNotConfigured, ErrBadRef, ErrNotConfigured, ErrNotConfigured, ErrNotConfigured}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			problems, err := NewResolver(c.backend, fakeClock(), 0, discard).Check(ctx, app)
			if c.unavail != errors.Is(err, ErrUnavailable) || (!c.unavail && err != nil) {
				t.Fatalf("err = %v, unavailable wanted: %v", err, c.unavail)
			}
			var got []string
			for i, p := range problems {
				got = append(got, p.String())
				if i < len(c.kinds) && !errors.Is(p.Err, c.kinds[i]) {
					t.Errorf("%s: not %v", p.Path, c.kinds[i])
				}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("problems =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

// TestOutage stops a Vault of the test's own: resolution fails with
// ErrUnavailable while it is down and recovers by itself when it is back.
func TestOutage(t *testing.T) {
	t.Parallel()
	d := startDevVault(t)
	ctx := testCtx(t)
	root := rootClient(t, d.addr(), d.Token)
	put := func(val string) {
		t.Helper()
		if _, err := root.KVv2("secret").Put(ctx, "app/db", map[string]any{"password": val}); err != nil {
			t.Fatal(err)
		}
	}
	put("before")
	clk := fakeClock()
	v := newVault(t, Config{Address: d.addr(), Token: d.Token, RequestTimeout: time.Second}, clk, nil)
	r := NewResolver(v, clk, 5*time.Second, discard)
	ref := map[string]Ref{"db": {Path: "secret/app/db", Field: "password"}}
	if got, err := r.ResolveRefs(ctx, ref); err != nil || got["db"].Reveal() != "before" {
		t.Fatalf("before the outage: %v", err)
	}
	d.stop()
	clk.Step(5 * time.Second) // the cached value expires
	for range 3 {             // and stays failed, with the same reason, on retries
		got, err := r.ResolveRefs(ctx, ref)
		if !errors.Is(err, ErrUnavailable) || got != nil {
			t.Fatalf("during the outage: %v, %v", got, err)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "secret db: vault unreachable at secret/app/db: dial tcp") || !strings.Contains(msg, "connection refused") {
			t.Fatalf("outage reason = %q", msg)
		}
	}
	d.start() // a dev server starts empty; the same root token works again
	put("after")
	if got, err := r.ResolveRefs(ctx, ref); err != nil || got["db"].Reveal() != "after" {
		t.Fatalf("after the outage: %v", err)
	}
}

// TestHungVault: a Vault that accepts connections and never answers costs a
// launch one RequestTimeout, not forever.
func TestHungVault(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var conns sync.WaitGroup
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { <-t.Context().Done(); c.Close() })
		}
	}()
	v := newVault(t, Config{Address: "http://" + l.Addr().String(), Token: "t", RequestTimeout: 200 * time.Millisecond}, clock.Real{}, nil)
	r := NewResolver(v, fakeClock(), 0, discard)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = r.ResolveRefs(ctx, map[string]Ref{"db": {Path: "secret/db", Field: "password"}})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) ||
		err.Error() != "secret db: vault unreachable at secret/db: no answer before the deadline: context deadline exceeded" {
		t.Fatalf("err = %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the caller's context expired: the per-call deadline did not apply")
	}
}

func TestMemoryBackend(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	m := NewMemory()
	m.Put("secret/db", map[string]string{"password": "a"})
	if v := m.Put("secret/db", map[string]string{"password": "b"}); v != 2 {
		t.Fatalf("second Put version = %d", v)
	}
	r := NewResolver(m, fakeClock(), 0, discard)
	ref := map[string]Ref{"db": {Path: "secret/db", Field: "password"}}
	if got, err := r.ResolveRefs(ctx, ref); err != nil || got["db"].Reveal() != "b" {
		t.Fatalf("resolve: %v", err)
	}
	m.Fail("secret/other", ErrUnavailable)
	_, err := r.ResolveRefs(ctx, map[string]Ref{"o": {Path: "secret/other", Field: "x"}})
	if !errors.Is(err, ErrUnavailable) || err.Error() != "secret o: vault unreachable at secret/other" {
		t.Fatalf("failing path: %v", err)
	}
	if !reflect.DeepEqual(m.Paths(), []string{"secret/db"}) {
		t.Fatalf("Paths = %v", m.Paths())
	}
}

func TestResolveFailsClosedOnBadSpec(t *testing.T) {
	t.Parallel()
	m := NewMemory()
	m.Put("secret/db", map[string]string{"password": "pw"})
	cases := []struct {
		name string
		app  *appspec.App
		want string
		kind error
		n    int
	}{
		{name: "no secrets", app: &appspec.App{Env: map[string]appspec.EnvValue{"A": {Value: "x"}}}},
		{name: "only used secrets are read", n: 1, app: &appspec.App{
			Env:     map[string]appspec.EnvValue{"P": {Secret: "db"}, "A": {Value: "x"}},
			Secrets: map[string]appspec.Secret{"db": {Source: "secret/db#password"}, "unused": {Source: "secret/absent#x"}},
		}},
		{name: "undeclared", kind: ErrBadRef, want: `secret ghost: not declared in "secrets" (referenced by env P)`, app: &appspec.App{
			Env: map[string]appspec.EnvValue{"P": {Secret: "ghost"}},
		}},
		{name: "unparsable", kind: ErrBadRef, want: `secret db: source "secret/db#" has an empty field after '#'`, app: &appspec.App{
			Env:     map[string]appspec.EnvValue{"P": {Secret: "db"}},
			Secrets: map[string]appspec.Secret{"db": {Source: "secret/db#"}},
		}},
		{name: "one failure fails the launch", kind: ErrNotFound, want: "secret b: not found at secret/absent", app: &appspec.App{
			Env:     map[string]appspec.EnvValue{"A": {Secret: "a"}, "B": {Secret: "b"}},
			Secrets: map[string]appspec.Secret{"a": {Source: "secret/db#password"}, "b": {Source: "secret/absent#x"}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env, err := NewResolver(m, fakeClock(), 0, discard).Resolve(testCtx(t), c.app)
			if c.kind != nil {
				if !errors.Is(err, c.kind) || err.Error() != c.want || env != nil {
					t.Fatalf("Resolve = %v, %v; want %q", env, err, c.want)
				}
				return
			}
			if err != nil || len(env) != c.n {
				t.Fatalf("Resolve = %v, %v; want %d values", env, err, c.n)
			}
		})
	}
}
