package portfwd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Kernel forwarding: a veth pair into the namespace, addresses from a /30
// of KernelPool, and one nftables table that DNATs the host ports to the
// container's address (see doc.go).
const (
	// kernelIfPrefix + 3 hex digits names the host end of a task's veth.
	// The name is the block's lock across processes: the kernel refuses a
	// second link of the same name, so whoever creates flfwdNNN owns
	// block NNN.
	kernelIfPrefix = "flfwd"
	// kernelTablePrefix + the same digits names the task's nft table.
	kernelTablePrefix = "flotilla_fwd_"
	// kernelBlocks /30 blocks fit in KernelPool.
	kernelBlocks = 1 << 12
)

// KernelPool is where kernel forwarding takes its addresses: 4096 /30
// blocks of the link-local range, the host end of the veth at .1 of its
// block and the container end at .2. 169.254.64.0/18 stays clear of the
// first and last /24 (reserved by RFC 3927) and of 169.254.169.254, the
// metadata address of cloud machines.
var KernelPool = netip.MustParsePrefix("169.254.64.0/18")

// KernelConfig tunes kernel forwarding. The zero value is usable.
type KernelConfig struct {
	// Timeout bounds each ip, nsenter and nft command; default 10 s.
	Timeout time.Duration
}

// Kernel is one task's kernel forwarding. Close removes it.
type Kernel struct {
	cfg   KernelConfig
	block int
	ifc   string
	table string
	host  netip.Addr // the veth's host end
	ctr   netip.Addr // the container end

	mu     sync.Mutex
	closed bool
}

// Interface is the host end of the task's veth pair.
func (k *Kernel) Interface() string { return k.ifc }

// Table is the task's nftables table (family ip).
func (k *Kernel) Table() string { return k.table }

// ContainerAddr is the container's address on the veth.
func (k *Kernel) ContainerAddr() netip.Addr { return k.ctr }

// pool hands out blocks within this process; the link name guards them
// across processes.
var pool = struct {
	sync.Mutex
	used map[int]bool
	next int
}{used: map[int]bool{}, next: rand.IntN(kernelBlocks)} // a random start: processes rarely meet

func takeBlock() (int, bool) {
	pool.Lock()
	defer pool.Unlock()
	for range kernelBlocks {
		b := pool.next
		pool.next = (pool.next + 1) % kernelBlocks
		if !pool.used[b] {
			pool.used[b] = true
			return b, true
		}
	}
	return 0, false
}

func releaseBlock(b int) {
	pool.Lock()
	delete(pool.used, b)
	pool.Unlock()
}

func blockAddrs(b int) (host, ctr netip.Addr) {
	a := KernelPool.Addr().As4()
	off := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	off += uint32(b) * 4
	at := func(n uint32) netip.Addr {
		v := off + n
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return at(1), at(2)
}

func blockNames(b int) (ifc, table string) {
	return fmt.Sprintf("%s%03x", kernelIfPrefix, b), fmt.Sprintf("%s%03x", kernelTablePrefix, b)
}

// run execs a command with a bounded context; stdin is fed if not empty,
// files become descriptors 3, 4… of the child. The error carries the
// command and its stderr.
func (c KernelConfig) run(ctx context.Context, stdin string, files []*os.File, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.ExtraFiles = files
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if stdin != "" {
			msg += " (input: " + strings.ReplaceAll(strings.TrimSpace(stdin), "\n", "; ") + ")"
		}
		return fmt.Errorf("portfwd: %s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return nil
}

func (c KernelConfig) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 10 * time.Second
}

var supported struct {
	once sync.Once
	err  error
}

// KernelSupported tells whether kernel forwarding can be set up on this
// machine: ip, nsenter and nft are on PATH and nft may read the ruleset
// (CAP_NET_ADMIN). The answer is found once per process; the first call
// also removes the tables of processes that died while forwarding (a
// table whose veth is gone).
func KernelSupported(ctx context.Context) error {
	supported.once.Do(func() {
		for _, b := range []string{"ip", "nsenter", "nft"} {
			if _, err := exec.LookPath(b); err != nil {
				supported.err = fmt.Errorf("portfwd: kernel forwarding needs %s (Debian packages iproute2, util-linux, nftables): %w", b, err)
				return
			}
		}
		c := KernelConfig{}
		if err := c.run(ctx, "", nil, "nft", "list", "tables", "ip"); err != nil {
			supported.err = err
			return
		}
		sweepStale(ctx, c)
	})
	return supported.err
}

var tableRE = regexp.MustCompile(`(?m)^table ip ` + kernelTablePrefix + `([0-9a-f]{3})$`)

// sweepStale deletes the tables of blocks nobody holds: their process
// ended without removing them (a crash), and their DNAT would still take
// the host ports. A block is claimed first with a link of its name, so a
// process setting it up right now is never disturbed.
func sweepStale(ctx context.Context, c KernelConfig) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	out, err := exec.CommandContext(ctx, "nft", "list", "tables", "ip").Output()
	if err != nil {
		return
	}
	for _, m := range tableRE.FindAllStringSubmatch(string(out), -1) {
		b, err := strconv.ParseUint(m[1], 16, 16)
		if err != nil || int(b) >= kernelBlocks {
			continue
		}
		ifc, table := blockNames(int(b))
		if _, err := net.InterfaceByName(ifc); err == nil {
			continue // held
		}
		pool.Lock()
		mine := pool.used[int(b)]
		pool.used[int(b)] = true
		pool.Unlock()
		if mine {
			continue
		}
		if c.run(ctx, "", nil, "ip", "link", "add", ifc, "type", "veth", "peer", "name", ifc+"p") == nil {
			if c.run(ctx, "", nil, "nft", "delete", "table", "ip", table) != nil {
				// The stale DNAT stays (this package has no logger to say
				// so): keep the block claimed, here and, through its link,
				// for every process, so no task is set up behind it. What
				// is lost is one of the 4,096 blocks.
				continue
			}
			if c.run(ctx, "", nil, "ip", "link", "del", ifc) != nil {
				continue // the link still claims the block: lost, as above
			}
		}
		releaseBlock(int(b))
	}
}

// ForwardKernel forwards mappings from host (an IPv4 address or a name
// resolving to one; 0.0.0.0 means every local address) into ns through the
// kernel. The host ports are not bound here: the caller keeps them
// reserved (a Forwarder from Listen that is never served). On failure
// nothing is left behind.
func ForwardKernel(ctx context.Context, host string, mappings []Mapping, ns *NetNS, cfg KernelConfig) (*Kernel, error) {
	if err := KernelSupported(ctx); err != nil {
		return nil, err
	}
	hostIP, err := resolve4(ctx, host)
	if err != nil {
		return nil, err
	}
	nsFile, err := ns.file()
	if err != nil {
		return nil, err
	}
	defer nsFile.Close()
	k, err := claimBlock(ctx, cfg, nsFile)
	if err != nil {
		return nil, err
	}
	if err := k.setup(ctx, hostIP, mappings, nsFile); err != nil {
		if cerr := k.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	return k, nil
}

func resolve4(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Is4() {
			return netip.Addr{}, fmt.Errorf("portfwd: kernel forwarding is IPv4 only; host %s", host)
		}
		return a, nil
	}
	as, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil || len(as) == 0 {
		return netip.Addr{}, fmt.Errorf("portfwd: resolving %s to an IPv4 address: %w", host, err)
	}
	return as[0].Unmap(), nil
}

// claimBlock creates the veth pair of a free block, its container end
// moved into the namespace as eth0.
func claimBlock(ctx context.Context, cfg KernelConfig, nsFile *os.File) (*Kernel, error) {
	var lastErr error
	for range 32 {
		b, ok := takeBlock()
		if !ok {
			return nil, fmt.Errorf("portfwd: all %d address blocks of %s are in use", kernelBlocks, KernelPool)
		}
		ifc, table := blockNames(b)
		host, ctr := blockAddrs(b)
		err := cfg.run(ctx, "", []*os.File{nsFile}, "ip", "link", "add", ifc, "type", "veth", "peer", "name", "eth0", "netns", "/proc/self/fd/3")
		if err != nil {
			if _, ierr := net.InterfaceByName(ifc); ierr == nil {
				// Another process holds this block; its link stays ours to
				// avoid until it is gone, so the block stays marked here.
				lastErr = err
				continue
			}
			releaseBlock(b)
			return nil, err
		}
		k := &Kernel{cfg: cfg, block: b, ifc: ifc, table: table, host: host, ctr: ctr}
		if who := addrInUse(netip.PrefixFrom(host, 30), ifc); who != "" {
			// Someone outside Flotilla uses these addresses: leave them.
			lastErr = fmt.Errorf("portfwd: %s already has an address in %s", who, netip.PrefixFrom(host, 30).Masked())
			if derr := cfg.run(ctx, "", nil, "ip", "link", "del", ifc); derr != nil {
				return nil, errors.Join(lastErr, derr)
			}
			continue // the block stays marked: it is not ours to use
		}
		return k, nil
	}
	return nil, fmt.Errorf("portfwd: no free address block after 32 tries: %w", lastErr)
}

// addrInUse names an interface other than ours with an address in p.
func addrInUse(p netip.Prefix, ours string) string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	p = p.Masked()
	for _, ifc := range ifs {
		if ifc.Name == ours {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && p.Contains(ip.Unmap()) {
					return ifc.Name
				}
			}
		}
	}
	return ""
}

func (k *Kernel) setup(ctx context.Context, hostIP netip.Addr, mappings []Mapping, nsFile *os.File) error {
	c := k.cfg
	if err := c.run(ctx, fmt.Sprintf("addr add %s/30 dev %s\nlink set %s up\n", k.host, k.ifc, k.ifc), nil, "ip", "-batch", "-"); err != nil {
		return err
	}
	// Per interface, and the interface is the task's: nothing to restore.
	// route_localnet: a DNAT from 127.x leaves through this interface.
	// forwarding: clients on other hosts (prerouting) are routed here.
	for _, s := range []string{"route_localnet", "forwarding"} {
		if err := os.WriteFile(fmt.Sprintf("/proc/sys/net/ipv4/conf/%s/%s", k.ifc, s), []byte("1\n"), 0o644); err != nil {
			return fmt.Errorf("portfwd: sysctl net.ipv4.conf.%s.%s=1: %w", k.ifc, s, err)
		}
	}
	if err := c.run(ctx, fmt.Sprintf("addr add %s/30 dev eth0\nlink set eth0 up\n", k.ctr), []*os.File{nsFile},
		"nsenter", "--net=/proc/self/fd/3", "ip", "-batch", "-"); err != nil {
		return err
	}
	return c.run(ctx, k.ruleset(hostIP, mappings), nil, "nft", "-f", "-")
}

// ruleset replaces the task's table in one transaction (a leftover of
// the same name, from a process that died, goes with it).
func (k *Kernel) ruleset(hostIP netip.Addr, mappings []Mapping) string {
	match := "ip daddr " + hostIP.String()
	if hostIP.IsUnspecified() {
		match = "fib daddr type local"
	}
	var dnat strings.Builder
	for _, m := range mappings {
		proto := strings.ToLower(m.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		fmt.Fprintf(&dnat, "\t\t%s %s dport %d dnat to %s:%d\n", match, proto, m.HostPort, k.ctr, m.ContainerPort)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s\ndelete table ip %s\ntable ip %s {\n", k.table, k.table, k.table)
	fmt.Fprintf(&b, "\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n%s\t}\n", dnat.String())
	fmt.Fprintf(&b, "\tchain prerouting {\n\t\ttype nat hook prerouting priority -100; policy accept;\n%s\t}\n", dnat.String())
	fmt.Fprintf(&b, "\tchain postrouting {\n\t\ttype nat hook postrouting priority 100; policy accept;\n\t\toifname %q ip daddr %s masquerade\n\t}\n}\n", k.ifc, k.ctr)
	return b.String()
}

// Close deletes the table and the veth pair (which takes its container end
// with it). It is safe to call more than once; the second call does
// nothing.
func (k *Kernel) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	ctx := context.Background()
	var errs []error
	// The table first: no DNAT may outlive the task and take the port of
	// whatever binds it next.
	if err := k.cfg.run(ctx, "", nil, "nft", "delete", "table", "ip", k.table); err != nil && !strings.Contains(err.Error(), "No such file or directory") {
		errs = append(errs, err)
	}
	if err := k.cfg.run(ctx, "", nil, "ip", "link", "del", k.ifc); err != nil {
		if _, ierr := net.InterfaceByName(k.ifc); ierr == nil {
			// Still there: the block is not free.
			return errors.Join(append(errs, err)...)
		}
	}
	releaseBlock(k.block)
	return errors.Join(errs...)
}

// file gives a duplicate of the namespace's descriptor, for a child
// process (ip, nsenter) to enter it by /proc/self/fd/3.
func (n *NetNS) file() (*os.File, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return nil, ErrClosed
	}
	fd, err := unix.FcntlInt(uintptr(n.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("portfwd: dup network namespace %s: %w", n.path, err)
	}
	return os.NewFile(uintptr(fd), n.path), nil
}
