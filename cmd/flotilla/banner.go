package main

import (
	"fmt"
	"io"
	"net"

	"github.com/flotilla-sched/flotilla/localmesos"
)

func printBanner(w io.Writer, p *platform, m *localmesos.Master, executor string) {
	api := "http://" + p.ln.Addr().String()
	fmt.Fprintf(w, `
Flotilla dev is running.

  API (Marathon v2)   %s
  Mesos master        %s   (localmesos, %d agents, %s executor)
  DNS                 %s
  Gateway             %s
  State               in memory (use 'flotilla serve --zk …' for ZooKeeper)
  Vault               %s

Try:
  flotilla app deploy -f examples/web.json --api %s
  flotilla app list --api %s
  dig @%s -p %s web.flotilla.%s +short
  curl -H 'Host: web.example.com' %s/

`, api, m.URL(), len(m.Agents()), executor, dnsLine(p), gatewayLine(p), vaultLine(p), api, api, dnsHost(p), dnsPort(p), p.cfg.DNSDomain, gatewayURL(p))
}

func vaultLine(p *platform) string {
	if p.vault == nil {
		return "not configured (set VAULT_ADDR and VAULT_TOKEN to use secrets)"
	}
	return "configured from VAULT_ADDR"
}

func dnsLine(p *platform) string {
	if p.dns == nil {
		return "off (--dns-addr)"
	}
	return p.cfg.DNSAddr + " (UDP and TCP; Mesos-DNS HTTP API under the API's /v1/)"
}

func dnsHost(p *platform) string {
	h, _, _ := net.SplitHostPort(p.cfg.DNSAddr)
	return h
}

func dnsPort(p *platform) string {
	_, port, _ := net.SplitHostPort(p.cfg.DNSAddr)
	return port
}

func gatewayLine(p *platform) string {
	if p.gateway == nil {
		return "off (--gateway-addr, --internal-gateway-addr)"
	}
	return fmt.Sprintf("external %s (apps marked external), internal %s (every app by its DNS name)",
		orNone(p.cfg.GatewayAddr), orNone(p.cfg.InternalGWAddr))
}

func gatewayURL(p *platform) string {
	if p.cfg.GatewayAddr == "" {
		return "http://<gateway-addr>"
	}
	return "http://" + p.cfg.GatewayAddr
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
