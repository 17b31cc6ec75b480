// Command gateway-tcp benchmarks the gateway's TCP mode (service ports)
// against HAProxy's mode tcp (bench/gateway-tcp/run.sh runs both):
//
//	gateway-tcp backend -addr 127.0.0.1:19201      # echo, or a stream after "S\n"
//	gateway-tcp serve -port 19280 -backends a,b,c  # the gateway, one TCP-mode service port
//	gateway-tcp conns -addr 127.0.0.1:19280 -c 32 -d 10s   # short connections/s
//	gateway-tcp bytes -addr 127.0.0.1:19280 -c 8 -d 10s    # bytes/s of long streams
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/gateway"
	"github.com/flotilla-sched/flotilla/internal/cpuprof"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gateway-tcp backend|serve|conns|bytes [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "backend":
		err = backend(ctx, os.Args[2:])
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "conns":
		err = conns(os.Args[2:])
	case "bytes":
		err = bytesLoad(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// backend echoes what it reads; a connection that starts with "S\n" gets
// an endless stream instead (for bytes/s).
func backend(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:19201", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); ln.Close() }()
	chunk := make([]byte, 64<<10)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 4096)
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if n >= 2 && string(buf[:2]) == "S\n" {
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
			if _, err := io.Copy(c, c); err != nil {
				return
			}
		}()
	}
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	port := fs.Uint("port", 19280, "service port (TCP mode) on 127.0.0.1")
	backends := fs.String("backends", "", "comma-separated host:port")
	balance := fs.String("balance", appspec.BalanceRoundRobin, "roundrobin, leastconn or source")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile here until stopped")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stopProfile, err := cpuprof.Start(*cpuprofile)
	if err != nil {
		return err
	}
	defer func() {
		if err := stopProfile(); err != nil {
			fmt.Fprintln(os.Stderr, "gateway-tcp:", err)
		}
	}()
	var bs []gateway.Backend
	for i, a := range strings.Split(*backends, ",") {
		host, p, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("backend %q: %w", a, err)
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return fmt.Errorf("backend %q: %w", a, err)
		}
		bs = append(bs, gateway.Backend{TaskID: fmt.Sprintf("bench.%d", i+1), Host: host, Port: uint32(n)})
	}
	opts := gateway.Options{Balance: *balance}
	gw, err := gateway.New(gateway.Config{InternalAddr: "127.0.0.1:0",
		Log: logging.Component(logging.Discard(), "gateway"), Registerer: prometheus.NewRegistry()})
	if err != nil {
		return err
	}
	gw.Update([]gateway.App{{ID: "/bench", DNSName: "bench.flotilla.mesos", Backends: bs, Options: opts,
		Services: []gateway.Service{{Index: 0, Port: uint32(*port), Mode: appspec.ModeTCP, Options: opts, Backends: bs}}}})
	if p := gw.Problems(); len(p) > 0 {
		return fmt.Errorf("routes: %v", p)
	}
	if err := gw.Start(); err != nil {
		return err
	}
	if len(gw.ServiceAddrs()) != 1 {
		return fmt.Errorf("service port %d not bound (see the gateway log)", *port)
	}
	fmt.Println("serving")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return gw.Shutdown(sctx)
}

// conns opens short connections as fast as c workers can: connect, send
// 64 bytes, read them back, close. It prints connections/s.
func conns(args []string) error {
	fs := flag.NewFlagSet("conns", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:19280", "target")
	workers := fs.Int("c", 32, "concurrent clients")
	dur := fs.Duration("d", 10*time.Second, "duration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	msg := []byte(strings.Repeat("x", 63) + "\n")
	var done, failed atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(*dur)
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, len(msg))
			for time.Now().Before(deadline) {
				if err := oneConn(*addr, msg, buf); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("conns/s %.0f failed %d", float64(done.Load())/dur.Seconds(), failed.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Printf(" first error: %v", e)
	}
	fmt.Println()
	return nil
}

func oneConn(addr string, msg, buf []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	// No TIME_WAIT pile-up on the client side: close with a reset, as
	// load tools do, so that ports last the run.
	c.(*net.TCPConn).SetLinger(0)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != string(msg) {
		return errors.New("echo differs")
	}
	return nil
}

// bytesLoad reads c long streams for the duration and prints bytes/s.
func bytesLoad(args []string) error {
	fs := flag.NewFlagSet("bytes", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:19280", "target")
	workers := fs.Int("c", 8, "concurrent streams")
	dur := fs.Duration("d", 10*time.Second, "duration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var total atomic.Int64
	deadline := time.Now().Add(*dur)
	var wg sync.WaitGroup
	errs := make(chan error, *workers)
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", *addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if _, err := io.WriteString(c, "S\n"); err != nil {
				errs <- err
				return
			}
			c.SetReadDeadline(deadline)
			buf := make([]byte, 256<<10)
			for {
				n, err := c.Read(buf)
				total.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	fmt.Printf("MB/s %.0f\n", float64(total.Load())/dur.Seconds()/1e6)
	return nil
}
