package main

import (
	"fmt"
	"io"

	"github.com/flotilla-sched/flotilla/localmesos"
)

func printBanner(w io.Writer, p *platform, m *localmesos.Master, executor string) {
	api := "http://" + p.ln.Addr().String()
	fmt.Fprintf(w, `
Flotilla dev is running.

  API (Marathon v2)   %s
  Mesos master        %s   (localmesos, %d agents, %s executor)
  State               in memory (use 'flotilla serve --zk …' for ZooKeeper)
  Vault               %s

Try:
  flotilla app deploy -f examples/web.json --api %s
  flotilla app list --api %s
  curl -s %s/v2/apps | head

`, api, m.URL(), len(m.Agents()), executor, vaultLine(p), api, api, api)
}

func vaultLine(p *platform) string {
	if p.vault == nil {
		return "not configured (set VAULT_ADDR and VAULT_TOKEN to use secrets)"
	}
	return "configured from VAULT_ADDR"
}
