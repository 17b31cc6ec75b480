// Command localmesos runs the local Mesos-compatible master with in-process
// agents (package localmesos) until interrupted.
//
//	localmesos --listen 127.0.0.1:5050 --agents 3 --executor docker|process|simulated \
//	    [--zk zk://127.0.0.1:2181/mesos] [--heartbeat 15s] [--networks dcos,backend]
//
// --networks names the USER networks Docker tasks may join (Marathon's
// "network": "USER" with a name); there is no CNI here, so a USER task runs
// like a BRIDGE one, in its own network namespace with its port mappings
// forwarded from the agent's address. A task naming another network fails
// with REASON_CONTAINER_LAUNCH_FAILED.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/localmesos"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "localmesos:") {
			msg = "localmesos: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("localmesos", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:5050", "master address")
	agents := fs.Int("agents", 3, "number of agents")
	execName := fs.String("executor", "", "docker, process or simulated (default docker when the engine answers, else process)")
	forwarding := fs.String("port-forwarding", "auto", "how the docker executor forwards BRIDGE/USER host ports: kernel (veth and nftables DNAT; the agent refuses to start without ip, nsenter and nft), userland (a proxy in the agent) or auto (kernel per task when it can be set up, else userland)")
	zkURL := fs.String("zk", "", "register in ZooKeeper, e.g. zk://127.0.0.1:2181/mesos")
	heartbeat := fs.Duration("heartbeat", 15*time.Second, "interval of HEARTBEAT events")
	resources := fs.String("resources", "", "agent resources, Mesos style: cpus:4;mem:8192;disk:10240;ports:[31000-32000]")
	attributes := fs.String("attributes", "", "attributes of every agent, Mesos style: rack:r1;zone:a (default rack:r1..r3 by agent)")
	hostname := fs.String("hostname", "127.0.0.1", "hostname agents report in offers (BRIDGE/USER host ports are bound on it)")
	networks := fs.String("networks", strings.Join(executor.DefaultNetworks, ","), "comma-separated USER networks Docker tasks may join (empty: none)")
	samePorts := fs.Bool("same-ports", false, "give every agent the whole ports range (simulated executor only)")
	noAgentHTTP := fs.Bool("no-agent-http", false, "do not start the agents' HTTP endpoints")
	level := fs.String("log-level", "info", "log level")
	format := fs.String("log-format", "text", "log format: text or json")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file (benchmarks)")
	gcPercent := fs.Int("gogc", 400, "garbage collector target percentage for this process (Go's default is 100; a test master trades memory for CPU)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *agents <= 0 {
		return fmt.Errorf("--agents must be positive, got %d", *agents)
	}
	log, err := logging.New(logging.Options{Level: *level, Format: *format})
	if err != nil {
		return err
	}
	debug.SetGCPercent(*gcPercent)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("create cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("start cpu profile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				log.WithError(err).WithField("file", *cpuProfile).Error("the CPU profile may be incomplete")
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg := localmesos.Config{
		Listen: *listen, Agents: *agents, ZK: *zkURL, Heartbeat: *heartbeat, Log: log,
		Hostname: *hostname, SamePorts: *samePorts, NoAgentHTTP: *noAgentHTTP, Clock: clock.Real{},
		Networks: parseNetworks(*networks),
	}
	if *resources != "" {
		r, err := localmesos.ParseResources(*resources)
		if err != nil {
			return err
		}
		cfg.Resources = r
	}
	if *attributes != "" {
		attrs, err := parseAttributes(*attributes)
		if err != nil {
			return err
		}
		cfg.AgentSpecs = make([]localmesos.AgentSpec, *agents)
		for i := range cfg.AgentSpecs {
			cfg.AgentSpecs[i].Attributes = attrs
		}
	}
	name, factory, err := localmesos.ExecutorByName(ctx, *execName, *forwarding, log)
	if err != nil {
		return err
	}
	cfg.Executor, cfg.NoSandbox = factory, name == "simulated"
	m, err := localmesos.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer m.Close()
	logging.Component(log, "localmesos").WithField("executor", name).WithField("url", m.URL()).Info("serving")
	for _, a := range m.Agents() {
		logging.Component(log, "localmesos").WithField("agent", a.ID).WithField("url", a.URL).Info("agent")
	}
	<-ctx.Done()
	return nil
}

// parseNetworks splits --networks; "" is a non-nil empty list (no USER
// networks), unlike nil, which would mean the default.
func parseNetworks(s string) []string {
	out := []string{}
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func parseAttributes(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		kv := strings.SplitN(strings.TrimSpace(part), ":", 2)
		if len(kv) != 2 || kv[0] == "" {
			return nil, fmt.Errorf("bad --attributes entry %q (want name:value)", part)
		}
		out[kv[0]] = kv[1]
	}
	return out, nil
}
