package mesosconn

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// noLeader is a detector that knows no leading master (ZooKeeper's
// leader znode gone, say).
type noLeader struct{}

var errNoLeader = errors.New("no leading master known")

func (noLeader) Leader(context.Context) (string, <-chan struct{}, error) {
	return "", nil, errNoLeader
}
func (noLeader) Close() {}

// TestRedirectWithoutLeaderIsLogged: a subscription that follows a
// master's redirect while the detector knows no leader goes on, but hears
// of no change of leader from the detector; it says so, naming the master
// it follows and the detector's error (the peek's error was dropped).
func TestRedirectWithoutLeaderIsLogged(t *testing.T) {
	l, hook := logtest.NewNullLogger()
	c := haConn(t, "127.0.0.1:1", &haIDStore{}, func(cfg *ConnConfig) {
		cfg.Detector = noLeader{}
		cfg.Logger = l.WithField("component", "conn")
	})
	const leader = "http://127.0.0.1:2/api/v1/scheduler"
	c.hint = leader
	target, changed, err := c.target(context.Background())
	if err != nil || target != leader || changed != nil {
		t.Fatalf("target = %q, %v, %v; want the redirect's master, no change channel, no error", target, changed, err)
	}
	var logged []string
	for _, e := range hook.AllEntries() {
		logged = append(logged, e.Message)
		if strings.Contains(e.Message, "following a redirect while the detector knows no leader") {
			if e.Data["master"] != leader || e.Data[logrus.ErrorKey] != errNoLeader {
				t.Errorf("logged %v; want the master followed and the detector's error", e.Data)
			}
			return
		}
	}
	t.Fatalf("following a redirect without a known leader is not logged; logged %q", logged)
}
