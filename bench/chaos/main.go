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
	flag.Parse()
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
