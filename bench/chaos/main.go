// Command chaos runs real Flotilla replicas (flotilla serve) against a real
// cmd/localmesos registered in ZooKeeper, kills the leader with SIGKILL
// during deployments, and measures what issue 16 asks: time to a new
// leader answering writes, deployments completing, tasks replaced by a
// failover, task counts above instances + maximumOverCapacity, tasks and
// apps lost, and DNS answers on every replica throughout. The harness
// itself is Run (harness.go); TestChaosShort runs a short variant of it
// inside `make test`.
//
//	go build -o bin/ ./cmd/... && go run ./bench/chaos -zk 127.0.0.1:2181 -rounds 20
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	var c Config
	flag.StringVar(&c.Bin, "bin", "bin", "directory holding flotilla and localmesos")
	flag.StringVar(&c.ZK, "zk", os.Getenv("FLOTILLA_TEST_ZK"), "ZooKeeper host:port")
	flag.IntVar(&c.Rounds, "rounds", 5, "leader kills")
	flag.IntVar(&c.Stops, "sigstops", 1, "after the kills, leader SIGSTOPs past the ZooKeeper session, each followed by SIGCONT")
	flag.IntVar(&c.Apps, "apps", 3, "apps, each with -instances instances")
	flag.IntVar(&c.Instances, "instances", 4, "instances per app")
	flag.IntVar(&c.BasePort, "port", 18100, "first port: replica i uses port+10i (API) and port+10i+1 (DNS); the master port+50")
	flag.StringVar(&c.AgentPorts, "agent-ports", "21000-21999", "the agents' ports range")
	flag.StringVar(&c.LogDir, "logs", "", "directory for the processes' logs (default: a temporary one)")
	flag.DurationVar(&c.Session, "session", 10*time.Second, "the replicas' --zk-session-timeout")
	faults := flag.String("faults", "", "after the kills and stops, comma-separated: zk (needs -own-zk), agent, vault (needs -vault-addr)")
	flag.BoolVar(&c.OwnZK, "own-zk", false, "start a ZooKeeper of the harness's own on port+60 (java, /usr/share/java/zookeeper.jar) instead of -zk")
	flag.StringVar(&c.VaultAddr, "vault-addr", os.Getenv("VAULT_ADDR"), "Vault the replicas reach through a proxy on port+61 that the vault fault cuts; empty: none")
	flag.StringVar(&c.VaultToken, "vault-token", os.Getenv("VAULT_TOKEN"), "token for -vault-addr (writes the test secret; the replicas read with it)")
	flag.StringVar(&c.Executor, "executor", "simulated", "localmesos's executor: simulated, or process (real backends: -testapp as every app's command)")
	flag.StringVar(&c.Testapp, "testapp", "", "cmd/testapp binary, the apps' command with -executor process (default <bin>/testapp)")
	flag.BoolVar(&c.Gateway, "gateway", false, "replicas serve their internal gateway, asked with HTTP throughout (needs -executor process)")
	flag.BoolVar(&c.Edge, "edge", false, "run a flotilla edge node following the replicas; its DNS and gateway are asked too")
	flag.BoolVar(&c.EdgeZK, "edge-zk", false, "the edge node follows through ZooKeeper (--zk) instead of --api (needs -own-zk)")
	flag.IntVar(&c.Freshness, "freshness", 0, "after the stops, scale-ups timed on every DNS server against the leader's")
	flag.Parse()
	if c.Testapp == "" && c.Executor == "process" {
		c.Testapp = filepath.Join(c.Bin, "testapp")
	}
	if c.Testapp != "" {
		abs, err := filepath.Abs(c.Testapp) // tasks run in their sandboxes
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			os.Exit(2)
		}
		c.Testapp = abs
	}
	for _, f := range strings.Split(*faults, ",") {
		if f = strings.TrimSpace(f); f != "" {
			c.Faults = append(c.Faults, f)
		}
	}
	c.Out = os.Stdout
	res, err := Run(c)
	if res != nil {
		res.Print(os.Stdout, c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

var errNoZK = errors.New("-zk (or FLOTILLA_TEST_ZK) is required")
