// Command flotilla is the Flotilla scheduler and its client.
//
//	flotilla serve --master zk://127.0.0.1:2181/mesos --zk zk://127.0.0.1:2181/flotilla
//	flotilla dev        # the whole platform on one machine, with localmesos
//	flotilla migrate --from marathon-export.json --dry-run
//	flotilla edge --api http://replica:8080 --gateway-addr :80 --gateway-groups external
//	flotilla version
package main

import (
	"fmt"
	"os"
)

// version is set with -ldflags "-X main.version=…" by release builds.
var version = "0.1.0-dev"

const usage = `usage: flotilla <command> [flags]

commands:
  serve     run a Flotilla replica against a Mesos master
  dev       run the whole platform on this machine (localmesos, framework, API, DNS, gateway)
  edge      serve DNS and/or the gateway on a non-replica host, following the leader (like marathon-lb)
  app       manage apps through the API: list, show, deploy, scale, restart, rm, tasks, deployments
  pod       manage pods through the API: list, show, status, deploy, scale, kill, rm
  migrate   move a Marathon export (/v2/groups or /v2/apps) into Flotilla, with a per-app report (--dry-run)
  version   print the version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "version", "--version", "-v":
		fmt.Println("flotilla", version)
	case "serve":
		err = runServe(os.Args[2:])
	case "dev":
		err = runDev(os.Args[2:])
	case "app":
		err = runApp(os.Args[2:])
	case "pod":
		err = runPod(os.Args[2:])
	case "migrate":
		err = runMigrate(os.Args[2:])
	case "edge":
		err = runEdge(os.Args[2:])
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "flotilla: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "flotilla %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
