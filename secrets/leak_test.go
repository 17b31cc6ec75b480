package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// jsonHook renders every entry a second time with the JSON formatter.
type jsonHook struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (h *jsonHook) Levels() []logrus.Level { return logrus.AllLevels }
func (h *jsonHook) Fire(e *logrus.Entry) error {
	b, err := (&logrus.JSONFormatter{}).Format(e)
	h.mu.Lock()
	h.buf.Write(b)
	h.mu.Unlock()
	return err
}

type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// TestCanaryNeverLeaks resolves a random canary through every path this
// package has (success, failures, check, rotation, outage), at trace level,
// then searches every value, error and log line it produced.
func TestCanaryNeverLeaks(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ctx := testCtx(t)
	canary := "canary-" + randHex(t, 16)
	db := b.putV2(t, "db", map[string]any{"password": canary, canary: "as-a-key-too"})
	denied := b.putV2(t, "denied", map[string]any{"password": canary})

	text := &syncBuf{}
	root, err := logging.New(logging.Options{Level: "trace", Format: "text", Out: text})
	if err != nil {
		t.Fatal(err)
	}
	hook := &jsonHook{}
	root.AddHook(hook)
	log := logging.Component(root, "secrets")

	cfg := b.approle(t, "2s", "3s", db)
	v := newVault(t, cfg, clock.Real{}, log)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = v.Run(rctx) }()
	r := NewResolver(v, fakeClock(), 0, log)
	app := &appspec.App{
		ID:      "/canary",
		Env:     map[string]appspec.EnvValue{"DB_PASSWORD": {Secret: "db"}},
		Secrets: map[string]appspec.Secret{"db": {Source: db + "#password"}},
	}
	var produced []any
	env, err := r.Resolve(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if env["DB_PASSWORD"].Reveal() != canary {
		t.Fatal("the canary did not resolve; the search below would prove nothing")
	}
	produced = append(produced, env, env["DB_PASSWORD"])
	for _, src := range []string{db + "#nope", denied + "#password", db + "-absent#password"} {
		ref, _ := ParseRef(src)
		_, err := r.ResolveRefs(ctx, map[string]Ref{"db": ref})
		if err == nil {
			t.Fatalf("%s resolved", src)
		}
		produced = append(produced, err)
	}
	app.Secrets["bad"] = appspec.Secret{Source: denied + "#password"}
	problems, err := r.Check(ctx, app)
	produced = append(produced, problems, err)
	for _, p := range problems {
		produced = append(produced, p, p.Err)
	}
	w := NewWatcher(v, clock.Real{}, time.Minute, log, func(c Change) { produced = append(produced, c) })
	w.Set([]string{db, denied})
	w.Poll(ctx)
	b.putV2(t, "db", map[string]any{"password": canary + "-2"})
	w.Poll(ctx)

	down := newVault(t, Config{Address: "http://127.0.0.1:1", Token: "t"}, clock.Real{}, log)
	_, err = NewResolver(down, fakeClock(), 0, log).ResolveRefs(ctx, map[string]Ref{"db": {Path: db, Field: "password"}})
	produced = append(produced, err)

	time.Sleep(3 * time.Second) // let Run renew and log in again, logging as it goes
	log.WithField("env", env).WithField("value", env["DB_PASSWORD"]).Info("a careless caller logs the environment")
	log.Infof("careless: %v %s %+v %#v %q %x", env, env["DB_PASSWORD"], env, env, env["DB_PASSWORD"], env["DB_PASSWORD"])

	var outs []string
	for _, p := range produced {
		for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			outs = append(outs, fmt.Sprintf(f, p))
		}
		if j, err := json.Marshal(p); err == nil {
			outs = append(outs, string(j))
		}
	}
	text.mu.Lock()
	outs = append(outs, text.buf.String())
	text.mu.Unlock()
	hook.mu.Lock()
	outs = append(outs, hook.buf.String())
	hook.mu.Unlock()
	if !strings.Contains(outs[len(outs)-2], "a careless caller") || !strings.Contains(outs[len(outs)-2], "logged in to vault") {
		t.Fatal("the log capture is empty; the search would prove nothing")
	}
	hexCanary := fmt.Sprintf("%x", canary)
	for _, o := range outs {
		if strings.Contains(o, canary) || strings.Contains(o, hexCanary) {
			t.Fatalf("canary leaked in: %s", o)
		}
	}
	t.Logf("searched %d outputs, %d bytes of logs", len(outs), len(outs[len(outs)-2])+len(outs[len(outs)-1]))
}
