package portfwd

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// needKernel skips (fails under CI=true) where kernel forwarding cannot be
// set up.
func needKernel(t *testing.T) {
	t.Helper()
	if err := KernelSupported(context.Background()); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and kernel forwarding is unavailable: %v", err)
		}
		t.Skipf("kernel forwarding unavailable: %v", err)
	}
}

func TestKernelPoolIsLinkLocal(t *testing.T) {
	ll := netip.MustParsePrefix("169.254.0.0/16")
	meta := netip.MustParseAddr("169.254.169.254")
	for _, b := range []int{0, 1, kernelBlocks / 2, kernelBlocks - 1} {
		h, c := blockAddrs(b)
		p := netip.PrefixFrom(h, 30).Masked()
		if !ll.Contains(h) || !ll.Contains(c) || !KernelPool.Contains(h) || !KernelPool.Contains(c) || p.Contains(meta) || !p.Contains(c) {
			t.Errorf("block %d: host %s container %s (block %s) outside %s or not one /30", b, h, c, p, KernelPool)
		}
		if h.As4()[2] == 0 || h.As4()[2] == 255 {
			t.Errorf("block %d in a reserved /24: %s", b, h)
		}
		ifc, table := blockNames(b)
		if len(ifc) > 15 || !strings.HasPrefix(table, kernelTablePrefix) {
			t.Errorf("block %d names %q %q", b, ifc, table)
		}
	}
	if h, _ := blockAddrs(0); h != netip.MustParseAddr("169.254.64.1") {
		t.Errorf("block 0 host end %s", h)
	}
	if _, c := blockAddrs(kernelBlocks - 1); c != netip.MustParseAddr("169.254.127.254") {
		t.Errorf("last block container end %s", c)
	}
}

func exists(args ...string) bool {
	return exec.Command(args[0], args[1:]...).Run() == nil
}

// TestKernelTCPAndUDP: the host port, reserved by an unserved Forwarder,
// reaches the namespace's echo server over TCP and UDP through the
// kernel's DNAT; the table and the veth exist while forwarding and are gone
// after Close, and the port is bindable once the reservation is closed.
func TestKernelTCPAndUDP(t *testing.T) {
	t.Parallel()
	needKernel(t)
	ns := newNamespace(t)
	hp := freePort(t)
	maps := []Mapping{
		{HostPort: hp, ContainerPort: echoPort, Protocol: "tcp"},
		{HostPort: hp, ContainerPort: echoPort, Protocol: "udp"},
	}
	reserved, err := Listen("127.0.0.1", maps, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer reserved.Close()
	k, err := ForwardKernel(context.Background(), "127.0.0.1", maps, ns, KernelConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if !exists("nft", "list", "table", "ip", k.Table()) {
		t.Fatalf("table %s missing while forwarding", k.Table())
	}
	if _, err := net.InterfaceByName(k.Interface()); err != nil {
		t.Fatalf("veth %s missing while forwarding: %v", k.Interface(), err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", hp)

	echoHalfClose(t, addr, bytes.Repeat([]byte("kernel"), 100<<10))
	u, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := udpRoundTrip(t, u, "kernel udp"); got != "kernel udp" {
		t.Fatalf("udp echo = %q", got)
	}
	u.Close()

	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if exists("nft", "list", "table", "ip", k.Table()) {
		t.Errorf("table %s left after Close", k.Table())
	}
	if _, err := net.InterfaceByName(k.Interface()); err == nil {
		t.Errorf("veth %s left after Close", k.Interface())
	}
	if err := reserved.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatalf("%s not bindable after Close: %v", addr, err)
	}
	l.Close()
}

// TestKernelBlocksAreExclusive: two forwardings at once get different
// blocks, and a block whose link another process holds is skipped.
func TestKernelBlocksAreExclusive(t *testing.T) {
	t.Parallel()
	needKernel(t)
	ns := newNamespace(t)
	ns2 := newNamespace(t)
	// Take the next block's name as another process would.
	pool.Lock()
	next := pool.next
	pool.Unlock()
	foreign, _ := blockNames(next)
	if err := exec.Command("ip", "link", "add", foreign, "type", "veth", "peer", "name", foreign+"p").Run(); err == nil {
		defer exec.Command("ip", "link", "del", foreign).Run()
	}
	k1, err := ForwardKernel(context.Background(), "127.0.0.1", []Mapping{{HostPort: freePort(t), ContainerPort: echoPort, Protocol: "tcp"}}, ns, KernelConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer k1.Close()
	k2, err := ForwardKernel(context.Background(), "127.0.0.1", []Mapping{{HostPort: freePort(t), ContainerPort: echoPort, Protocol: "tcp"}}, ns2, KernelConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	if k1.Interface() == foreign || k2.Interface() == foreign || k1.block == k2.block || k1.ContainerAddr() == k2.ContainerAddr() {
		t.Fatalf("blocks %s (%s) and %s (%s), foreign %s", k1.Interface(), k1.ContainerAddr(), k2.Interface(), k2.ContainerAddr(), foreign)
	}
}
