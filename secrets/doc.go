// Package secrets owns Flotilla's side of HashiCorp Vault: logging in
// (token, token file or AppRole) and keeping the token alive, parsing
// Marathon's secret references ("<vault path>#<field>"), detecting KV v1
// and v2 mounts like the vault CLI, resolving an app's secrets at launch
// through a short cache, checking them at submit time, and watching KV v2
// versions for rotation. It never persists or logs a value: a resolved
// secret is a Value, which prints as "<redacted>" everywhere and yields its
// text only through Reveal, and every error names the secret and the
// reason, never the value.
//
// Wiring, in cmd/flotilla:
//
//	cfg, err := secrets.ConfigFromEnv(os.Getenv) // ErrNotConfigured without VAULT_ADDR
//	v, err := secrets.New(cfg, clock.Real{}, logging.Component(root, "secrets"))
//	go v.Run(ctx)                                // renew or log in again before expiry
//	res := secrets.NewResolver(v, clock.Real{}, 0, log)
//	w := secrets.NewWatcher(v, clock.Real{}, time.Minute, log, func(c secrets.Change) {
//		res.Invalidate(c.Path)
//		changes <- c // the framework rolls the apps using c.Path
//	})
//	w.Set(pathsOfAllApps) // secrets.Paths(app) per app
//	go w.Run(ctx)
//
// At submit time (the API answers 422 with each Problem's Path and text):
//
//	problems, err := res.Check(ctx, app) // err wraps ErrUnavailable: Vault not asked
//
// At launch (the framework):
//
//	env, err := res.Resolve(ctx, app)
//	if err != nil { // *Error: "secret db: permission denied at secret/db"
//		// do not launch; show err; retry with backoff
//	}
//	for name, v := range env {
//		// Mesos Environment.Variable{Name: name, Type: SECRET,
//		//	Secret: {Type: VALUE, Value: {Data: []byte(v.Reveal())}}}
//	}
//
// Errors wrap ErrBadRef, ErrNotConfigured, ErrPermissionDenied, ErrNotFound
// or ErrUnavailable; only the last clears on its own (Vault back), the
// others need someone to act, but all are worth retrying with backoff.
//
// A Vault policy for Flotilla needs read on <mount>/data/<path> (KV v2) or
// <path> (KV v1); read on <mount>/metadata/<path> lets the Watcher poll
// versions without reading values.
package secrets
