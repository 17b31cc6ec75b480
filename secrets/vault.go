package secrets

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

// Vault is the Backend on a real Vault server: it logs in, keeps its token
// alive (Run), detects KV v1 and v2 mounts like the vault CLI and reads.
// It is safe for concurrent use.
type Vault struct {
	cfg   Config
	api   *api.Client
	clock clock.Clock
	log   *logrus.Entry

	loginMu sync.Mutex // one login at a time; reads wait for it

	mountMu sync.Mutex
	mounts  map[string]mountInfo // by mount path, "secret/"

	mu  sync.Mutex
	tok tokenState
}

type mountInfo struct {
	path string // "secret/"; "" when Vault cannot say (read as v1)
	v2   bool
	at   time.Time
}

type tokenState struct {
	loggedIn  bool
	at        time.Time     // when ttl was granted
	ttl       time.Duration // 0: never expires
	increment time.Duration // what a renewal asks for
	renewable bool
	maxed     bool // a renewal granted less than asked: max TTL is near
	failures  int
	logins    int
	renewals  int
	warned    bool
}

// Status is the token's state, for health pages and tests.
type Status struct {
	LoggedIn  bool
	Expires   time.Time // zero: never
	Renewable bool
	Logins    int
	Renewals  int
}

// New builds a client from cfg without talking to Vault, so Flotilla starts
// during a Vault outage; the first read or Login logs in. clk drives
// renewal and caches; log receives no secret, token or secret_id.
func New(cfg Config, clk clock.Clock, log *logrus.Entry) (*Vault, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	// A launch reads its paths in parallel; the default of 2 idle
	// connections per host would redial (and re-handshake TLS) for the rest.
	tr.MaxIdleConnsPerHost = 64
	ac := &api.Config{
		Address:    cfg.Address,
		HttpClient: &http.Client{Transport: tr},
		MaxRetries: cfg.MaxRetries,
		Timeout:    cfg.RequestTimeout,
	}
	if err := ac.ConfigureTLS(&api.TLSConfig{
		CACert: cfg.CACert, CAPath: cfg.CAPath,
		ClientCert: cfg.ClientCert, ClientKey: cfg.ClientKey,
		TLSServerName: cfg.TLSServerName, Insecure: cfg.Insecure,
	}); err != nil {
		return nil, fmt.Errorf("secrets: vault TLS configuration: %w", err)
	}
	c, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("secrets: vault client for %s: %w", cfg.Address, err)
	}
	// api.NewClient picks VAULT_TOKEN and VAULT_NAMESPACE from the process
	// environment; only cfg counts here.
	c.ClearToken()
	c.ClearNamespace()
	if cfg.Namespace != "" {
		c.SetNamespace(cfg.Namespace)
	}
	if cfg.Token != "" && !cfg.useAppRole() {
		c.SetToken(cfg.Token)
	}
	return &Vault{cfg: cfg, api: c, clock: clk, log: log, mounts: map[string]mountInfo{}}, nil
}

// Status reports the token's state.
func (v *Vault) Status() Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := Status{LoggedIn: v.tok.loggedIn, Renewable: v.tok.renewable, Logins: v.tok.logins, Renewals: v.tok.renewals}
	if v.tok.loggedIn && v.tok.ttl > 0 {
		s.Expires = v.tok.at.Add(v.tok.ttl)
	}
	return s
}

func (v *Vault) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, v.cfg.RequestTimeout)
}

// Login logs in with AppRole, or checks the token (re-reading the token
// file) and learns its TTL. Run calls it; call it at start-up to fail fast
// on bad credentials.
func (v *Vault) Login(ctx context.Context) error {
	v.loginMu.Lock()
	defer v.loginMu.Unlock()
	return v.login(ctx)
}

func (v *Vault) login(ctx context.Context) error {
	ctx, cancel := v.deadline(ctx)
	defer cancel()
	var (
		token     string
		ttl, inc  time.Duration
		renewable bool
		method    string
	)
	if v.cfg.useAppRole() {
		method = "approle"
		roleID := v.cfg.RoleID
		if roleID == "" {
			b, err := os.ReadFile(v.cfg.RoleIDFile)
			if err != nil {
				return fmt.Errorf("secrets: approle role_id file: %w", err)
			}
			roleID = strings.TrimSpace(string(b))
		}
		b, err := os.ReadFile(v.cfg.SecretIDFile)
		if err != nil {
			return fmt.Errorf("secrets: approle secret_id file: %w", err)
		}
		lc, err := v.api.Clone()
		if err != nil {
			return fmt.Errorf("secrets: approle login: %w", err)
		}
		lc.ClearToken()
		if v.cfg.Namespace != "" {
			lc.SetNamespace(v.cfg.Namespace)
		}
		s, err := lc.Logical().WriteWithContext(ctx, "auth/"+v.cfg.AppRoleMount+"/login",
			map[string]any{"role_id": roleID, "secret_id": strings.TrimSpace(string(b))})
		if err != nil {
			var re *api.ResponseError
			bad := errors.As(err, &re) && re.StatusCode == http.StatusBadRequest
			be := classify("auth/"+v.cfg.AppRoleMount+"/login", err)
			if bad {
				// Vault answers 400 to a wrong role_id or secret_id.
				be.kind = ErrPermissionDenied
			}
			return during("approle login", be)
		}
		if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
			return &backendError{op: "approle login", kind: ErrUnavailable, path: "auth/" + v.cfg.AppRoleMount + "/login", cause: errors.New("no token in the answer")}
		}
		token = s.Auth.ClientToken
		ttl = time.Duration(s.Auth.LeaseDuration) * time.Second
		inc, renewable = ttl, s.Auth.Renewable
		v.api.SetToken(token)
	} else {
		method = "token"
		token = v.cfg.Token
		if v.cfg.TokenFile != "" {
			b, err := os.ReadFile(v.cfg.TokenFile)
			if err != nil {
				return fmt.Errorf("secrets: vault token file: %w", err)
			}
			token = strings.TrimSpace(string(b))
		}
		v.api.SetToken(token)
		s, err := v.api.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			return during("token lookup", classify("auth/token/lookup-self", err))
		}
		if s == nil {
			return &backendError{op: "token lookup", kind: ErrUnavailable, path: "auth/token/lookup-self", cause: errors.New("empty answer")}
		}
		if ttl, err = s.TokenTTL(); err != nil {
			return fmt.Errorf("secrets: vault token lookup: bad ttl: %w", err)
		}
		if renewable, err = s.TokenIsRenewable(); err != nil {
			return fmt.Errorf("secrets: vault token lookup: bad renewable flag: %w", err)
		}
		inc = ttl
		if n, ok := s.Data["creation_ttl"].(json.Number); ok {
			if secs, err := n.Int64(); err == nil && secs > 0 {
				inc = time.Duration(secs) * time.Second
			}
		}
	}
	v.mu.Lock()
	v.tok = tokenState{loggedIn: true, at: v.clock.Now(), ttl: ttl, increment: inc, renewable: renewable,
		logins: v.tok.logins + 1, renewals: v.tok.renewals}
	v.mu.Unlock()
	v.log.WithFields(logrus.Fields{"method": method, "ttl": ttl, "renewable": renewable}).Info("logged in to vault")
	return nil
}

// ensureLogin logs in before the first read when the token is not known
// yet (AppRole, token file) or was found dead. A plain token is used as
// given; Run looks up its TTL.
func (v *Vault) ensureLogin(ctx context.Context) error {
	v.mu.Lock()
	ok := v.tok.loggedIn || (!v.cfg.useAppRole() && v.cfg.TokenFile == "")
	v.mu.Unlock()
	if ok {
		return nil
	}
	return v.loginIfNeeded(ctx)
}

// loginIfNeeded logs in unless a concurrent caller just did.
func (v *Vault) loginIfNeeded(ctx context.Context) error {
	v.loginMu.Lock()
	defer v.loginMu.Unlock()
	v.mu.Lock()
	ok := v.tok.loggedIn
	v.mu.Unlock()
	if ok {
		return nil
	}
	return v.login(ctx)
}

func (v *Vault) canRelogin() bool { return v.cfg.useAppRole() || v.cfg.TokenFile != "" }

// Run keeps the token alive until ctx ends: it renews at two thirds of the
// TTL, logs in again (AppRole, token file) when renewal is refused or the
// max TTL is near, and backs off on failures, all on the injected clock.
func (v *Vault) Run(ctx context.Context) error {
	delay := time.Duration(0)
	for {
		t := v.clock.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
		delay = v.maintain(ctx)
	}
}

const (
	minDelay   = 250 * time.Millisecond
	idleDelay  = time.Hour
	maxBackoff = 30 * time.Second
)

// maintain does what the token needs now and returns when to look again.
func (v *Vault) maintain(ctx context.Context) time.Duration {
	v.mu.Lock()
	st := v.tok
	v.mu.Unlock()
	now := v.clock.Now()
	var err error
	switch {
	case !st.loggedIn:
		err = v.loginIfNeeded(ctx)
	case st.ttl == 0:
		return idleDelay // a token without TTL (root) never expires
	case st.renewable && !st.maxed:
		err = v.renew(ctx, st)
		if errors.Is(err, ErrPermissionDenied) && v.canRelogin() {
			v.log.WithError(err).Warn("vault token renewal refused; logging in again")
			err = v.Login(ctx)
		}
	case v.canRelogin():
		err = v.Login(ctx)
	default:
		remaining := st.at.Add(st.ttl).Sub(now)
		if !st.warned {
			v.log.WithField("expires_in", remaining.Round(time.Second)).Error("vault token cannot be renewed and there is no way to log in again; reads will fail once it expires")
			v.mu.Lock()
			v.tok.warned = true
			v.mu.Unlock()
		}
		if remaining > 0 {
			return remaining
		}
		return idleDelay
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.tok.failures++
		d := time.Second << min(v.tok.failures-1, 5)
		d = min(d, maxBackoff)
		if v.tok.loggedIn && v.tok.ttl > 0 {
			if half := v.tok.at.Add(v.tok.ttl).Sub(now) / 2; half > minDelay && half < d {
				d = half
			}
		}
		v.log.WithError(err).WithField("retry_in", d).Warn("vault token upkeep failed")
		return d
	}
	v.tok.failures = 0
	if v.tok.ttl == 0 {
		return idleDelay
	}
	return max(v.tok.at.Add(v.tok.ttl*2/3).Sub(v.clock.Now()), minDelay)
}

func (v *Vault) renew(ctx context.Context, st tokenState) error {
	ctx, cancel := v.deadline(ctx)
	defer cancel()
	s, err := v.api.Auth().Token().RenewSelfWithContext(ctx, int(st.increment/time.Second))
	if err != nil {
		err = classify("auth/token/renew-self", err)
		if errors.Is(err, ErrPermissionDenied) {
			v.mu.Lock()
			v.tok.loggedIn = false
			v.mu.Unlock()
		}
		return during("token renewal", err)
	}
	if s == nil || s.Auth == nil {
		return &backendError{op: "token renewal", kind: ErrUnavailable, path: "auth/token/renew-self", cause: errors.New("no auth in the answer")}
	}
	ttl := time.Duration(s.Auth.LeaseDuration) * time.Second
	v.mu.Lock()
	v.tok.at = v.clock.Now()
	v.tok.ttl = ttl
	v.tok.renewable = s.Auth.Renewable
	v.tok.maxed = ttl < st.increment
	v.tok.renewals++
	v.mu.Unlock()
	v.log.WithField("ttl", ttl).Debug("renewed vault token")
	return nil
}

// mountOf finds path's mount and KV version the way `vault kv get` does,
// through sys/internal/ui/mounts, and remembers it per mount.
func (v *Vault) mountOf(ctx context.Context, path string) (mountInfo, error) {
	now := v.clock.Now()
	v.mountMu.Lock()
	var best mountInfo
	found := false
	for p, m := range v.mounts {
		if strings.HasPrefix(path+"/", p) && now.Sub(m.at) < v.cfg.MountCacheTTL && (!found || len(p) > len(best.path)) {
			best, found = m, true
		}
	}
	v.mountMu.Unlock()
	if found {
		return best, nil
	}
	s, err := v.api.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+path)
	if err != nil {
		return mountInfo{}, classify(path, err)
	}
	m := mountInfo{at: now}
	if s != nil {
		// Like the CLI: no answer means an old Vault, so plain (v1) reads.
		m.path, _ = s.Data["path"].(string)
		if opts, ok := s.Data["options"].(map[string]any); ok {
			ver, _ := opts["version"].(string)
			m.v2 = ver == "2"
		}
	}
	v.mountMu.Lock()
	v.mounts[m.path] = m
	v.mountMu.Unlock()
	return m, nil
}

// Read returns every field of the secret at path, from data/<rest> on a KV
// v2 mount or from path itself on KV v1.
func (v *Vault) Read(ctx context.Context, path string) (Entry, error) {
	ctx, cancel := v.deadline(ctx)
	defer cancel()
	if err := v.ensureLogin(ctx); err != nil {
		return Entry{}, err
	}
	m, err := v.mountOf(ctx, path)
	if err != nil {
		return Entry{}, err
	}
	apiPath := path
	if m.v2 {
		rest := strings.TrimPrefix(path, m.path)
		if rest == "" {
			return Entry{}, &backendError{kind: ErrNotFound, path: path, cause: errors.New("the path names a mount, not a secret")}
		}
		apiPath = m.path + "data/" + rest
	}
	s, err := v.api.Logical().ReadWithContext(ctx, apiPath)
	if err != nil {
		return Entry{}, classify(path, err)
	}
	if s == nil {
		return Entry{}, &backendError{kind: ErrNotFound, path: path}
	}
	data := s.Data
	ver := 0
	if m.v2 {
		data, _ = s.Data["data"].(map[string]any)
		if md, ok := s.Data["metadata"].(map[string]any); ok {
			ver = jsonInt(md["version"])
		}
		if data == nil {
			return Entry{}, &backendError{kind: ErrNotFound, path: path, cause: fmt.Errorf("version %d is deleted or destroyed", ver)}
		}
	}
	e := Entry{Fields: make(map[string]Value, len(data)), Version: ver}
	for k, raw := range data {
		e.Fields[k] = newValue(fieldString(raw))
	}
	return e, nil
}

// Version reads <mount>/metadata/<rest> for the current KV v2 version. A
// policy may grant read on data/ but not on metadata/, so a refusal falls
// back to reading the data and keeping only its version.
func (v *Vault) Version(ctx context.Context, path string) (int, error) {
	dctx, cancel := v.deadline(ctx)
	defer cancel()
	if err := v.ensureLogin(dctx); err != nil {
		return 0, err
	}
	m, err := v.mountOf(dctx, path)
	if err != nil {
		return 0, err
	}
	if !m.v2 {
		return 0, nil
	}
	s, err := v.api.Logical().ReadWithContext(dctx, m.path+"metadata/"+strings.TrimPrefix(path, m.path))
	if err != nil {
		err = classify(path, err)
		if errors.Is(err, ErrPermissionDenied) {
			e, rerr := v.Read(ctx, path)
			return e.Version, rerr
		}
		return 0, err
	}
	if s == nil {
		return 0, &backendError{kind: ErrNotFound, path: path}
	}
	return jsonInt(s.Data["current_version"]), nil
}

// classify turns a Vault client error into a backendError whose text is
// safe to show: status and Vault's message, or the network failure.
func classify(path string, err error) *backendError {
	var re *api.ResponseError
	if errors.As(err, &re) {
		cause := fmt.Errorf("vault answered %d", re.StatusCode)
		if !re.RawError && len(re.Errors) > 0 {
			cause = fmt.Errorf("vault answered %d: %s", re.StatusCode, vaultMessage(re.Errors))
		}
		switch re.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return &backendError{kind: ErrPermissionDenied, path: path, cause: cause}
		case http.StatusNotFound:
			return &backendError{kind: ErrNotFound, path: path, cause: cause}
		}
		return &backendError{kind: ErrUnavailable, path: path, cause: cause}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &backendError{kind: ErrUnavailable, path: path, cause: fmt.Errorf("no answer before the deadline: %w", context.DeadlineExceeded)}
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return &backendError{kind: ErrUnavailable, path: path, cause: op}
	}
	return &backendError{kind: ErrUnavailable, path: path, cause: err}
}

func jsonInt(x any) int {
	switch n := x.(type) {
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	case float64:
		return int(n)
	case int:
		return n
	}
	return 0
}

// fieldString renders a field the way `vault kv get -field` prints it:
// strings as they are, anything else as JSON.
func fieldString(x any) string {
	switch s := x.(type) {
	case string:
		return s
	case json.Number:
		return s.String()
	case nil:
		return ""
	}
	b, err := json.Marshal(x)
	if err != nil {
		return fmt.Sprint(x)
	}
	return string(b)
}

// vaultMessage flattens Vault's error list, which often arrives as a
// multi-line "1 error occurred:\n\t* permission denied", into one line.
func vaultMessage(errs []string) string {
	msg := strings.Join(strings.Fields(strings.Join(errs, "; ")), " ")
	if _, rest, ok := strings.Cut(msg, "error occurred: * "); ok {
		return rest
	}
	if _, rest, ok := strings.Cut(msg, "errors occurred: * "); ok {
		return strings.ReplaceAll(rest, " * ", "; ")
	}
	return msg
}
