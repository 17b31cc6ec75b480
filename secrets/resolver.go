package secrets

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
)

// Resolver turns an app's secret references into values at launch. It
// keeps each path's data for a short TTL (on the injected clock) so that a
// burst of launches costs one Vault read per path, and collapses
// concurrent reads of the same path into one.
type Resolver struct {
	b     Backend
	clock clock.Clock
	ttl   time.Duration
	log   *logrus.Entry

	mu       sync.Mutex
	cache    map[string]cached
	inflight map[string]*call
	hits     uint64
	misses   uint64
}

type cached struct {
	e  Entry
	at time.Time
}

type call struct {
	done chan struct{}
	e    Entry
	err  error
}

// DefaultCacheTTL is short on purpose: a value read once serves a burst of
// launches, and a rotated secret reaches new tasks soon even without a
// Watcher invalidating it.
const DefaultCacheTTL = 10 * time.Second

// NewResolver returns a Resolver over b. ttl <= 0 means DefaultCacheTTL.
// b may be nil when Flotilla runs without Vault: every secret then fails
// with ErrNotConfigured.
func NewResolver(b Backend, clk clock.Clock, ttl time.Duration, log *logrus.Entry) *Resolver {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	return &Resolver{b: b, clock: clk, ttl: ttl, log: log, cache: map[string]cached{}, inflight: map[string]*call{}}
}

// CacheStats counts path lookups served from the cache and from Vault.
type CacheStats struct{ Hits, Misses uint64 }

// Stats returns the cache counters.
func (r *Resolver) Stats() CacheStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return CacheStats{Hits: r.hits, Misses: r.misses}
}

// Invalidate drops path from the cache; call it when a Watcher reports a
// new version so the next launch reads the new value.
func (r *Resolver) Invalidate(path string) {
	r.mu.Lock()
	delete(r.cache, path)
	r.mu.Unlock()
}

// Resolve returns app's secret environment: variable name → value. On any
// failure it returns no values and an *Error for the first failing secret
// in name order, which names the secret and the reason (fail closed).
func (r *Resolver) Resolve(ctx context.Context, app *appspec.App) (map[string]Value, error) {
	env, refs, problems := envRefs(app)
	if len(problems) > 0 {
		return nil, problems[0].Err
	}
	used := make(map[string]Ref, len(env))
	for _, name := range env {
		used[name] = refs[name]
	}
	vals, err := r.ResolveRefs(ctx, used)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Value, len(env))
	for k, name := range env {
		out[k] = vals[name]
	}
	return out, nil
}

// ResolveRefs resolves refs keyed by a name the caller chooses (the
// secret's name in the app); errors name that key.
func (r *Resolver) ResolveRefs(ctx context.Context, refs map[string]Ref) (map[string]Value, error) {
	out := make(map[string]Value, len(refs))
	errs := r.resolve(ctx, refs, out)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return out, nil
}

// resolve fills out and returns one *Error per failing name, sorted.
func (r *Resolver) resolve(ctx context.Context, refs map[string]Ref, out map[string]Value) []*Error {
	paths := make([]string, 0, len(refs))
	seen := make(map[string]bool, len(refs))
	for _, ref := range refs {
		if !seen[ref.Path] {
			seen[ref.Path] = true
			paths = append(paths, ref.Path)
		}
	}
	entries, perrs := r.fetch(ctx, paths)
	var errs []*Error
	for name, ref := range refs {
		if err := perrs[ref.Path]; err != nil {
			e := &Error{Secret: name, Ref: ref, Kind: kindOf(err), Err: causeOf(err)}
			var be *backendError
			if errors.As(err, &be) && be.op != "" && e.Kind == ErrPermissionDenied {
				e.Reason = be.op + " refused at " + be.path
			}
			errs = append(errs, e)
			continue
		}
		v, ok := entries[ref.Path].Fields[ref.Field]
		if !ok {
			errs = append(errs, &Error{Secret: name, Ref: ref, Kind: ErrNotFound, Reason: fmt.Sprintf("field %q not found", ref.Field)})
			continue
		}
		out[name] = v
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Secret < errs[j].Secret })
	return errs
}

// fetch returns each path's entry from the cache or, for the misses, from
// the backend in parallel.
func (r *Resolver) fetch(ctx context.Context, paths []string) (map[string]Entry, map[string]error) {
	entries := make(map[string]Entry, len(paths))
	errs := map[string]error{}
	now := r.clock.Now()
	var wait []*call
	var waitPaths []string
	r.mu.Lock()
	for _, p := range paths {
		if c, ok := r.cache[p]; ok && now.Sub(c.at) < r.ttl {
			entries[p] = c.e
			r.hits++
			continue
		}
		r.misses++
		c, ok := r.inflight[p]
		if !ok {
			c = &call{done: make(chan struct{})}
			r.inflight[p] = c
			go r.load(ctx, p, c)
		}
		wait = append(wait, c)
		waitPaths = append(waitPaths, p)
	}
	r.mu.Unlock()
	for i, c := range wait {
		p := waitPaths[i]
		select {
		case <-c.done:
			if c.err != nil {
				errs[p] = c.err
			} else {
				entries[p] = c.e
			}
		case <-ctx.Done():
			errs[p] = &backendError{kind: ErrUnavailable, path: p, cause: ctx.Err()}
		}
	}
	return entries, errs
}

func (r *Resolver) load(ctx context.Context, path string, c *call) {
	defer close(c.done)
	if r.b == nil {
		c.err = &backendError{kind: ErrNotConfigured, path: path}
	} else {
		c.e, c.err = r.b.Read(ctx, path)
	}
	r.mu.Lock()
	delete(r.inflight, path)
	if c.err == nil {
		r.cache[path] = cached{e: c.e, at: r.clock.Now()}
		r.sweepLocked()
	}
	r.mu.Unlock()
	if c.err != nil {
		r.log.WithField("path", path).WithError(c.err).Debug("secret read failed")
	}
}

// sweepLocked drops expired entries so the cache holds only what recent
// launches used.
func (r *Resolver) sweepLocked() {
	now := r.clock.Now()
	for p, c := range r.cache {
		if now.Sub(c.at) >= r.ttl {
			delete(r.cache, p)
		}
	}
}

// Problem is one reason to refuse an app at submit time (HTTP 422).
type Problem struct {
	// Path is a JSON pointer into the app spec: "/secrets/db/source" or
	// "/env/DB_PASSWORD".
	Path   string
	Secret string
	// Err is an *Error; errors.Is tells ErrBadRef, ErrPermissionDenied,
	// ErrNotFound and ErrNotConfigured apart. Its text holds no value.
	Err error
}

func (p Problem) String() string { return p.Path + ": " + p.Err.Error() }

// Check validates app's secrets at submit time: every reference must parse,
// every env secret must be declared and, when Vault answers, every declared
// secret must be readable by Flotilla's token and have its field. It returns
// the problems sorted by Path, and ErrUnavailable (wrapped) when Vault could
// not be asked, in which case only the references were checked.
func (r *Resolver) Check(ctx context.Context, app *appspec.App) ([]Problem, error) {
	_, refs, problems := envRefs(app)
	if len(refs) == 0 {
		return problems, nil
	}
	var unavailable error
	errs := r.resolve(ctx, refs, make(map[string]Value, len(refs)))
	for _, e := range errs {
		if e.Kind == ErrUnavailable {
			if unavailable == nil {
				unavailable = e
			}
			continue
		}
		problems = append(problems, Problem{Path: "/secrets/" + e.Secret + "/source", Secret: e.Secret, Err: e})
	}
	sort.Slice(problems, func(i, j int) bool { return problems[i].Path < problems[j].Path })
	return problems, unavailable
}
