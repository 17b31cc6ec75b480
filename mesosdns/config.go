package mesosdns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// Defaults. The address is loopback so that a development machine never
// exposes a resolver by accident; production passes an internal address.
const (
	DefaultAddr           = "127.0.0.1:8600"
	DefaultDomain         = "mesos"
	DefaultFramework      = "flotilla"
	DefaultTTL            = 60
	DefaultForwardTimeout = 2 * time.Second
	DefaultMaxInFlight    = 1024
	DefaultResolvConf     = "/etc/resolv.conf"
	// advertisedUDPSize is what we tell EDNS0 clients we accept: the DNS flag
	// day 2020 value, small enough to avoid IP fragmentation.
	advertisedUDPSize = 1232
)

// ErrBadConfig is returned (wrapped) when a Config cannot be used.
var ErrBadConfig = errors.New("mesosdns: bad config")

// Config configures record building and serving. The zero value of every field
// selects its default, so Config{} is a working development setup.
type Config struct {
	// Addr is where UDP and TCP are served ("--dns-addr"). Port 0 picks a free
	// port, the same one for both protocols.
	Addr string
	// Domain is the zone we are authoritative for (Mesos-DNS "domain").
	Domain string
	// Framework is the framework name as it appears in task names; it may
	// hold dots, each part becoming a label as in Mesos-DNS.
	Framework string
	// TTL of every record, and the SOA minimum (negative caching).
	TTL uint32
	// NSIP is the address given for ns1.{domain}; by default the host of
	// Addr when it is a specific IP.
	NSIP net.IP

	// Upstreams are "host:port" resolvers for names outside Domain. Empty
	// means the nameservers of ResolvConf.
	Upstreams  []string
	ResolvConf string
	// AllowForward says whether a client may use us as a recursive resolver.
	// Clients it refuses get REFUSED for outside names, so the server is never
	// an open resolver. Nil allows loopback clients only.
	AllowForward func(net.Addr) bool
	// ForwardTimeout bounds one forwarded query across all upstreams.
	ForwardTimeout time.Duration
	// Exchanger sends forwarded queries; nil uses miekg/dns's client.
	Exchanger Exchanger

	// MaxInFlight caps queries that hold a goroutine (TCP queries and
	// forwarded queries); beyond it a query gets SERVFAIL at once. UDP answers
	// from our own records are served by UDPWorkers fixed goroutines and need
	// no slot.
	MaxInFlight int
	// UDPWorkers read and answer UDP packets, one per socket; default one
	// per two Ps (GOMAXPROCS/2, at least 1). A worker answers a batch of
	// queries per wake-up and waits in the netpoller when its socket is
	// empty; with more workers each one's batches are smaller and every
	// wake-up is a hand-off between runtime threads (futex wakes, a spinning
	// thread polling the network), which the clients on the same cores pay
	// for too. Measured on 2 cores under dnsperf (bench/dns, alternating,
	// under load): 1 worker answered more than 2 in 5 of 5 rounds (90–118k
	// against 71–105k qps) at 2.3–2.9 µs of CPU per query against 2.6–4.5,
	// with 23 queries per recvmmsg against 10; earlier 2 workers beat 4
	// the same way. One worker answers well over 200k qps on one core.
	UDPWorkers int
	// UDPSockets is how many UDP sockets share Addr's port (SO_REUSEPORT,
	// Linux only), the workers spread over them; default and at most
	// UDPWorkers. 1 binds one plain socket. Note that with more than
	// one, another process of the same user may bind the port as well.
	UDPSockets int
	// MaxTCPConns caps open TCP connections; default MaxInFlight. Beyond
	// it a connection is closed at once: left waiting in the kernel's
	// backlog, a client's query would queue behind a flood of idle
	// connections (measured: 7.7 s behind 10,000).
	MaxTCPConns int
	// MaxTCPConnsPerIP caps one client address's TCP connections, so one
	// client cannot hold all of MaxTCPConns; default MaxTCPConns/4.
	MaxTCPConnsPerIP int

	// Seed seeds the answer shuffling so tests are deterministic.
	Seed uint64
	// Clock times freshness and SOA serials; nil is the wall clock.
	Clock clock.Clock
	// Log is the component logger; nil discards.
	Log *logrus.Entry
	// Version is reported by /v1/version.
	Version string
}

// withDefaults fills defaults and validates; the result is what every other
// function relies on.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return c, fmt.Errorf("%w: addr %q: %w", ErrBadConfig, c.Addr, err)
	}
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	c.Domain = strings.ToLower(strings.Trim(c.Domain, "."))
	if _, ok := dns.IsDomainName(c.Domain + "."); !ok || c.Domain == "" {
		return c, fmt.Errorf("%w: domain %q is not a domain name", ErrBadConfig, c.Domain)
	}
	if c.Framework == "" {
		c.Framework = DefaultFramework
	}
	if domainFrag(c.Framework) == "" {
		return c, fmt.Errorf("%w: framework %q has no valid DNS characters", ErrBadConfig, c.Framework)
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.NSIP == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			c.NSIP = ip
		}
	}
	if c.ResolvConf == "" {
		c.ResolvConf = DefaultResolvConf
	}
	if c.AllowForward == nil {
		c.AllowForward = LoopbackOnly
	}
	if c.ForwardTimeout <= 0 {
		c.ForwardTimeout = DefaultForwardTimeout
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.UDPWorkers <= 0 {
		c.UDPWorkers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if c.UDPSockets <= 0 {
		c.UDPSockets = c.UDPWorkers
	}
	if !reusePortSupported {
		c.UDPSockets = 1
	}
	c.UDPSockets = min(c.UDPSockets, c.UDPWorkers)
	if c.MaxTCPConns <= 0 {
		c.MaxTCPConns = c.MaxInFlight
	}
	if c.MaxTCPConnsPerIP <= 0 {
		c.MaxTCPConnsPerIP = max(1, c.MaxTCPConns/4)
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Log == nil {
		c.Log = logging.Component(logging.Discard(), "mesosdns")
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return c, nil
}

// LoopbackOnly allows forwarding for clients on 127.0.0.0/8 and ::1, the
// safe default when nothing says which networks are internal.
func LoopbackOnly(a net.Addr) bool {
	ip := addrIP(a)
	return ip.IsValid() && ip.Unmap().IsLoopback()
}

// AllowPrefixes allows forwarding for clients inside any of the prefixes, for
// an internal listener whose clients are the agents' networks.
func AllowPrefixes(prefixes ...netip.Prefix) func(net.Addr) bool {
	return func(a net.Addr) bool {
		ip := addrIP(a).Unmap()
		for _, p := range prefixes {
			if p.Contains(ip) {
				return true
			}
		}
		return false
	}
}

func addrIP(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip
	case nil:
		return netip.Addr{}
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}
		}
		return ap.Addr()
	}
}
