package mesosconn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/flotilla-sched/flotilla/framework"
)

// Every executor update carries a uuid and must be acknowledged with its
// own ACKNOWLEDGE call: two calls per task launched (STARTING, RUNNING).
// Sent one by one through mesos-go's httpcli, each is a full net/http round
// trip (a write, a read, and two hand-offs to the transport's goroutines
// on our side; a read and a write on the master's), and at 100,000 tasks
// they were the largest cost of the launch path. ackPipe sends a batch of
// them pipelined on one kept-alive HTTP/1.1 connection: all requests in one
// write, then the answers in order. The master answers pipelined requests
// in order, as HTTP/1.1 requires: libprocess queues each connection's
// responses in request order for exactly this (HttpProxy,
// 3rdparty/libprocess/src/http_proxy.hpp), and localmesos's net/http
// server serves a connection's requests one after another. The calls are encoded by mesos-go's codec, exactly as httpcli
// would; only the transport differs. Everything else (SUBSCRIBE, ACCEPT,
// KILL, …) still goes through mesos-go's httpsched caller.

// ackPipe pipelines ACKNOWLEDGE calls to one master on one subscription.
type ackPipe struct {
	addr     string // host:port to dial
	uri      string // request target
	host     string // Host header
	ctype    string
	codec    encoding.Codec
	streamID string
	master   string // for errors
	dialer   net.Dialer
	timeout  time.Duration

	mu     sync.Mutex
	idle   []*pipeConn
	closed bool
}

type pipeConn struct {
	net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

// newAckPipe returns a pipe for the master at target (the scheduler API's
// URL), or nil when target is not plain http, in which case the Driver
// acknowledges through mesos-go one call at a time.
func newAckPipe(target string, codec encoding.Codec, streamID string, timeout time.Duration) *ackPipe {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" || streamID == "" {
		return nil
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &ackPipe{
		addr: addr, uri: u.RequestURI(), host: u.Host, ctype: codec.Type.ContentType(),
		codec: codec, streamID: streamID, master: target, timeout: timeout,
		dialer: net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second},
	}
}

// close drops the idle connections; busy ones are closed when they return.
func (p *ackPipe) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

func (p *ackPipe) get(ctx context.Context) (pc *pipeConn, reused bool, err error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		pc = p.idle[n-1]
		p.idle = p.idle[:n-1]
	}
	p.mu.Unlock()
	if pc != nil {
		return pc, true, nil
	}
	c, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, false, err
	}
	return &pipeConn{Conn: c, br: bufio.NewReaderSize(c, 8192), bw: bufio.NewWriterSize(c, 16384)}, false, nil
}

func (p *ackPipe) put(pc *pipeConn) {
	p.mu.Lock()
	if p.closed || len(p.idle) >= 8 {
		p.mu.Unlock()
		pc.Close()
		return
	}
	p.idle = append(p.idle, pc)
	p.mu.Unlock()
}

// send acknowledges acks and returns an error for each one that failed,
// at its index (nil for success). A failed acknowledgement costs little:
// the agent re-sends the update and it is acknowledged again.
func (p *ackPipe) send(ctx context.Context, frameworkID string, acks []framework.Ack) []error {
	errs := make([]error, len(acks))
	for attempt := 0; ; attempt++ {
		pc, reused, err := p.get(ctx)
		if err != nil {
			return fillErrs(errs, 0, fmt.Errorf("mesosconn: ACKNOWLEDGE to %s: %w", p.master, err))
		}
		done, err := p.exchange(ctx, pc, frameworkID, acks, errs)
		if err == nil {
			return errs
		}
		pc.Close()
		// A kept-alive connection the master closed while idle fails
		// before the first answer; acknowledging an update twice is
		// harmless (the second finds no such pending update), so the
		// batch is sent again on a fresh connection.
		if done == 0 && reused && attempt == 0 && isStaleConn(err) && ctx.Err() == nil {
			continue
		}
		return fillErrs(errs, done, fmt.Errorf("mesosconn: ACKNOWLEDGE to %s: %w", p.master, err))
	}
}

func fillErrs(errs []error, from int, err error) []error {
	for i := from; i < len(errs); i++ {
		errs[i] = err
	}
	return errs
}

// exchange writes every call, then reads the answers in order; it returns
// how many answers it read and, on a connection failure, the error (the
// connection is then the caller's to close).
func (p *ackPipe) exchange(ctx context.Context, pc *pipeConn, frameworkID string, acks []framework.Ack, errs []error) (int, error) {
	deadline := time.Now().Add(p.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	pc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { pc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var body bytes.Buffer
	enc := p.codec.NewEncoder(encoding.SinkWriter(&body))
	// One call value for the whole batch: each is encoded before the next
	// overwrites it, and two allocations per ack showed in the profile.
	ack := &scheduler.Call_Acknowledge{}
	call := &scheduler.Call{Type: scheduler.Call_ACKNOWLEDGE, FrameworkID: &mesos.FrameworkID{Value: frameworkID}, Acknowledge: ack}
	for _, a := range acks {
		body.Reset()
		*ack = scheduler.Call_Acknowledge{AgentID: mesos.AgentID{Value: a.AgentID}, TaskID: mesos.TaskID{Value: a.TaskID}, UUID: a.UUID}
		if err := enc.Encode(call); err != nil {
			return 0, err
		}
		w := pc.bw
		w.WriteString("POST ")
		w.WriteString(p.uri)
		w.WriteString(" HTTP/1.1\r\nHost: ")
		w.WriteString(p.host)
		w.WriteString("\r\nContent-Type: ")
		w.WriteString(p.ctype)
		w.WriteString("\r\nAccept: ")
		w.WriteString(p.ctype)
		w.WriteString("\r\nMesos-Stream-Id: ")
		w.WriteString(p.streamID)
		w.WriteString("\r\nContent-Length: ")
		w.WriteString(strconv.Itoa(body.Len()))
		w.WriteString("\r\n\r\n")
		if _, err := w.Write(body.Bytes()); err != nil {
			return 0, err
		}
	}
	if err := pc.bw.Flush(); err != nil {
		return 0, err
	}
	keep := true
	for i := range acks {
		if closes, ok := readAccepted(pc.br); ok {
			if closes {
				keep = false
				if i < len(acks)-1 {
					return i + 1, errors.New("master closed the connection mid-batch")
				}
			}
			continue
		}
		resp, err := http.ReadResponse(pc.br, nil)
		if err != nil {
			return i, err
		}
		if resp.StatusCode == http.StatusAccepted {
			// Close drains the body (into a pooled buffer), so the next
			// answer starts where this one ends; io.ReadAll allocated
			// 512 bytes per ack for the empty body.
			if err := resp.Body.Close(); err != nil {
				return i, err
			}
		} else {
			msg, rerr := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			if rerr != nil {
				return i, rerr
			}
			errs[i] = fmt.Errorf("mesosconn: ACKNOWLEDGE to %s: %s: %s", p.master, resp.Status, bytes.TrimSpace(msg))
		}
		if resp.Close {
			keep = false
			if i < len(acks)-1 {
				return i + 1, errors.New("master closed the connection mid-batch")
			}
		}
	}
	if keep {
		p.put(pc)
	} else {
		pc.Close()
	}
	return len(acks), nil
}

// readAccepted consumes the master's usual answer to an ACKNOWLEDGE, a
// 202 Accepted with an empty body, when all of its header is already
// buffered, and says whether it closes the connection. Anything else (an
// error status, a body, chunking, a header not yet read whole, a line it
// does not understand) is left unread for net/http's ReadResponse, so this
// only ever takes the answers whose meaning is plain. ReadResponse made a
// header map and a Response for each of the 200,000 acks of 100,000
// launches: 2.5% of the CPU of the launch benchmark.
func readAccepted(br *bufio.Reader) (closes, ok bool) {
	if _, err := br.Peek(1); err != nil { // wait for the answer to start
		return false, false
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return false, false
	}
	lines := buf[:end+2]
	status, rest, _ := bytes.Cut(lines, []byte("\r\n"))
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 202 ")) || !plainHeader([]byte("Status"), status) {
		return false, false
	}
	sawLength := false
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found || !plainHeader(name, value) {
			return false, false
		}
		value = bytes.Trim(value, " \t")
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if string(value) != "0" || sawLength {
				return false, false
			}
			sawLength = true
		case asciiEqualFold(name, "Transfer-Encoding"):
			return false, false
		case asciiEqualFold(name, "Connection"):
			for _, opt := range bytes.Split(value, []byte(",")) {
				if asciiEqualFold(bytes.Trim(opt, " \t"), "close") {
					closes = true
				}
			}
		}
	}
	if !sawLength { // an HTTP/1.1 answer without a length ends with the connection
		return false, false
	}
	if _, err := br.Discard(end + 4); err != nil {
		return false, false // cannot happen: the bytes are buffered
	}
	return closes, true
}

// plainHeader says whether name is a token (RFC 9110) and value holds only
// visible ASCII, spaces and tabs: a header line whose meaning is plain.
func plainHeader(name, value []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	for _, c := range value {
		if (c < ' ' && c != '\t') || c > '~' {
			return false
		}
	}
	return true
}

// asciiEqualFold is strings.EqualFold for header names and tokens, without
// converting b to a string.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// isStaleConn recognises a kept-alive connection closed by the peer.
func isStaleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
