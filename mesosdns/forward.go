package mesosdns

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/miekg/dns"
)

// Exchanger sends one query to one upstream resolver. It is the seam for
// tests and for decorators (logging, metrics, retries), as in Mesos-DNS.
type Exchanger interface {
	// Exchange sends m to addr over network ("udp" or "tcp") and returns the
	// reply. It must return when ctx is done.
	Exchange(ctx context.Context, m *dns.Msg, network, addr string) (*dns.Msg, error)
}

// ExchangerFunc adapts a function to Exchanger.
type ExchangerFunc func(ctx context.Context, m *dns.Msg, network, addr string) (*dns.Msg, error)

// Exchange calls f.
func (f ExchangerFunc) Exchange(ctx context.Context, m *dns.Msg, network, addr string) (*dns.Msg, error) {
	return f(ctx, m, network, addr)
}

// clientExchanger is the real Exchanger on miekg/dns's client; the deadline
// comes from ctx.
type clientExchanger struct{ udp, tcp *dns.Client }

func newClientExchanger() clientExchanger {
	return clientExchanger{
		udp: &dns.Client{Net: "udp", UDPSize: dns.DefaultMsgSize},
		tcp: &dns.Client{Net: "tcp"},
	}
}

func (c clientExchanger) Exchange(ctx context.Context, m *dns.Msg, network, addr string) (*dns.Msg, error) {
	cl := c.udp
	if network == "tcp" {
		cl = c.tcp
	}
	r, _, err := cl.ExchangeContext(ctx, m, addr)
	if err != nil {
		return nil, fmt.Errorf("mesosdns: forward to %s/%s: %w", network, addr, err)
	}
	return r, nil
}

// upstreams resolves the configured upstreams, or the nameservers of the
// resolv.conf file, leaving out our own addresses so that we never forward to
// ourselves in a loop.
func upstreams(configured []string, resolvConf string, self []string) ([]string, error) {
	list := configured
	if len(list) == 0 {
		cc, err := dns.ClientConfigFromFile(resolvConf)
		if err != nil {
			return nil, fmt.Errorf("mesosdns: read upstreams from %s: %w", resolvConf, err)
		}
		for _, s := range cc.Servers {
			list = append(list, net.JoinHostPort(s, cc.Port))
		}
	}
	skip := make(map[string]bool, len(self))
	wildPorts := map[string]bool{} // ports we serve on every local address
	for _, s := range self {
		if h, p, err := net.SplitHostPort(s); err == nil {
			if ip := net.ParseIP(h); ip != nil {
				skip[net.JoinHostPort(ip.String(), p)] = true
				if ip.IsUnspecified() {
					wildPorts[p] = true
				}
			} else if h == "" {
				wildPorts[p] = true
			}
		}
	}
	var out []string
	for _, u := range list {
		h, p, err := net.SplitHostPort(u)
		if err != nil {
			// A bare address means port 53.
			h, p = u, "53"
		}
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return nil, fmt.Errorf("%w: upstream %q: bad port", ErrBadConfig, u)
		}
		ip := net.ParseIP(h)
		if ip == nil {
			return nil, fmt.Errorf("%w: upstream %q: not an IP address", ErrBadConfig, u)
		}
		addr := net.JoinHostPort(ip.String(), p)
		if skip[addr] || (wildPorts[p] && (ip.IsLoopback() || ip.IsUnspecified())) {
			continue
		}
		out = append(out, addr)
	}
	return out, nil
}
