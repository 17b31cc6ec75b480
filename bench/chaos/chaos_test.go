package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildBinaries builds flotilla and localmesos for the harness to run as
// real processes.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "../../cmd/flotilla", "../../cmd/localmesos", "../../cmd/testapp")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

func testZK(t *testing.T) string {
	t.Helper()
	zk := os.Getenv("FLOTILLA_TEST_ZK")
	if zk == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("FLOTILLA_TEST_ZK is not set: scripts/testbed.sh env")
		}
		t.Skip("FLOTILLA_TEST_ZK is not set (scripts/testbed.sh env)")
	}
	return zk
}

// TestChaosShort is `make chaos` in short, inside `make test`: three real
// replicas and a real master on a ZooKeeper the harness runs itself, the
// leader SIGKILLed during a rolling deployment, a scale-up and another
// rolling deployment (the killed replica restarted before each next
// kill), then every replica's ZooKeeper cut (the frozen view: DNS answers
// the last view, flotilla_discovery_view_age_seconds grows on each, and
// back to 0 once healed), during rolling deployments ZooKeeper restarted
// and the busiest agent removed, and Vault cut while an app with a secret
// deploys; real backends (cmd/testapp on the process executor, health
// checked), every replica's and an edge node's DNS and gateway asked
// throughout. Each deployment completes with
// the master running exactly the instances asked, no task of another app
// is replaced by a failover, no app is lost, no replica answers a running
// app's name with a failure, NXDOMAIN or an empty answer, and the secret's
// value is in no log.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes and ZooKeeper sessions; -short skips")
	}
	testZK(t) // the test bed is up; the harness runs its own ZooKeeper
	vault, token := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	if vault == "" || token == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("VAULT_ADDR and VAULT_TOKEN are not set: scripts/testbed.sh env")
		}
		t.Skip("VAULT_ADDR and VAULT_TOKEN are not set (scripts/testbed.sh env)")
	}
	bin := buildBinaries(t)
	var log strings.Builder
	cfg := Config{Bin: bin, OwnZK: true, Executor: "process", Testapp: filepath.Join(bin, "testapp"), Gateway: true, Edge: true, Rounds: 3, Stops: 0, Apps: 3, Instances: 4, BasePort: 24100,
		AgentPorts: "24800-24999", LogDir: t.TempDir(), Session: 4 * time.Second, Out: &log,
		Faults: []string{"zkcut", "zk", "master", "agent", "vault"}, VaultAddr: vault, VaultToken: token}
	res, err := Run(cfg)
	defer func() {
		var sum strings.Builder
		if res != nil {
			res.Print(&sum, cfg)
		}
		t.Logf("progress:\n%s%s", log.String(), sum.String())
		if t.Failed() {
			// t.TempDir goes with the test: keep the logs of a failed run,
			// they are what explains it.
			if kept, err := os.MkdirTemp("", "flotilla-chaos-failed-"); err != nil {
				t.Logf("keeping the logs: %v", err)
			} else if err := os.CopyFS(kept, os.DirFS(cfg.LogDir)); err != nil {
				t.Logf("keeping the logs in %s: %v", kept, err)
			} else {
				t.Logf("the processes' logs are kept in %s", kept)
			}
			for _, name := range []string{"flotilla-0", "flotilla-1", "flotilla-2", "localmesos", "zookeeper", "edge"} {
				if b, err := os.ReadFile(filepath.Join(cfg.LogDir, name+".log")); err == nil {
					t.Logf("%s.log (last 40 lines):\n%s", name, tail(string(b), 40))
				}
			}
		}
	}()
	if err != nil {
		t.Fatalf("chaos run: %v", err)
	}
	if len(res.Completions) != cfg.Rounds {
		t.Errorf("%d of %d interrupted deployments completed", len(res.Completions), cfg.Rounds)
	}
	if res.Replaced != 0 {
		t.Errorf("%d running tasks of apps not being deployed were replaced by a failover", res.Replaced)
	}
	if res.Lost != 0 {
		t.Errorf("%d apps lost", res.Lost)
	}
	if res.DNSAsked < 1000 {
		t.Errorf("only %d DNS lookups were made: the hammer did not run", res.DNSAsked)
	}
	if len(res.Faults) != len(cfg.Faults) {
		t.Errorf("%d of %d faults healed with the deployment done", len(res.Faults), len(cfg.Faults))
	}
	if res.SecretLeaks != 0 {
		t.Errorf("the test secret's value is in the processes' logs %d times (logs in %s)", res.SecretLeaks, res.LogDir)
	}
	if res.HTTPAsked < 1000 {
		t.Errorf("only %d HTTP requests were made through the gateways", res.HTTPAsked)
	}
	// Issue 16's goal: no failed request for apps with ≥ 2 healthy
	// instances and no bad DNS answer for running apps, during the leader
	// kills and the agent and Vault faults. (While ZooKeeper is down or cut
	// no leader exists and replicas serve their last view, and after a
	// master failover the leader re-subscribes: those phases are reported,
	// bench/RESULTS.md, not asserted.) Before a new leader held its kills
	// until it had settled, followers looked for it every 200 ms and the
	// gateways waited for newer routes when every backend failed, short
	// windows right after each election failed requests (1.7%) and DNS
	// answers; FLOTILLA_CHAOS_STRICT=0 relaxes the bar to the regression
	// guard used then (5% of requests, 1% of DNS answers), for a machine
	// too loaded for the goal.
	httpLimit, dnsLimit := int64(0), int64(0)
	if os.Getenv("FLOTILLA_CHAOS_STRICT") == "0" {
		httpLimit, dnsLimit = res.HTTPAsked*5/100, res.DNSAsked/100
	}
	failed := res.HTTPFailedIn["kills"] + res.HTTPFailedIn["agent"] + res.HTTPFailedIn["vault"]
	if failed > httpLimit {
		t.Errorf("%d of %d HTTP requests through the gateways failed for apps with ≥ 2 healthy running tasks during leader kills and the agent and Vault faults (more than %d): by phase %v, %v, first: %v",
			failed, res.HTTPAsked, httpLimit, res.HTTPFailedIn, res.HTTPSeen, res.HTTPLog)
	} else if failed > 0 {
		t.Logf("%d of %d HTTP requests failed during leader kills and the agent and Vault faults (issue 16's goal: 0): by phase %v", failed, res.HTTPAsked, res.HTTPFailedIn)
	}
	if res.DNSBad > dnsLimit {
		t.Errorf("%d of %d DNS answers for running apps were failures, NXDOMAIN or empty (more than %d): %v, first: %v", res.DNSBad, res.DNSAsked, dnsLimit, res.BadSeen, res.BadLog)
	} else if res.DNSBad > 0 {
		t.Logf("%d of %d DNS answers for running apps were failures, NXDOMAIN or empty (issue 16's goal: 0): %v, first: %v", res.DNSBad, res.DNSAsked, res.BadSeen, res.BadLog)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
