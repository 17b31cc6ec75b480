package mesosconn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
)

// MaxFrameBytes is the largest RecordIO frame (one event) read from a
// master: the cap of mesos-go's reader (1<<22, its largest protobuf), so no
// event Mesos sends is refused, and an event can never cost more.
const MaxFrameBytes = 4 << 20

// ErrBadFrame: the master's event stream is not RecordIO, or announced a
// frame over MaxFrameBytes. The subscription is dropped (and retried) as
// for any stream that ends.
var ErrBadFrame = errors.New("mesosconn: malformed event stream from the mesos master")

// maxSizeDigits is how long a RecordIO length line may be before its
// newline, as mesos-go reads it: the digits of the largest uint64.
const maxSizeDigits = 20

// frameGuard checks a RecordIO stream's framing before mesos-go's reader
// sees it, and passes the bytes through unchanged. mesos-go trusts the
// length line: one of 2^63 or more becomes a negative int and panics its
// reader (recordio.splitFrame slices data[:adv]), and it buffers up to
// its cap before noticing a frame is too long. Here a length line that is
// not a decimal number of at most maxSizeDigits, or that is over max, ends
// the stream with ErrBadFrame; every frame before it is delivered whole.
type frameGuard struct {
	r    io.ReadCloser
	max  uint64
	hdr  []byte // the length line read so far
	left uint64 // bytes of the current frame still to pass
	err  error  // sticky: returned once the bytes before it are delivered
}

func newFrameGuard(r io.ReadCloser, max uint64) *frameGuard {
	return &frameGuard{r: r, max: max, hdr: make([]byte, 0, maxSizeDigits)}
}

func (g *frameGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	for i := 0; i < n; {
		if g.left > 0 {
			k := min(uint64(n-i), g.left)
			i += int(k)
			g.left -= k
			continue
		}
		start := i - len(g.hdr) // where this length line began in p (may be < 0)
		c := p[i]
		i++
		if c != '\n' {
			if len(g.hdr) == maxSizeDigits {
				return g.fail(max(start, 0), fmt.Errorf("%w: a frame length line longer than %d bytes", ErrBadFrame, maxSizeDigits))
			}
			g.hdr = append(g.hdr, c)
			continue
		}
		size, perr := strconv.ParseUint(string(bytes.TrimSpace(g.hdr)), 10, 64)
		if perr != nil {
			return g.fail(max(start, 0), fmt.Errorf("%w: frame length %q is not a decimal number", ErrBadFrame, g.hdr))
		}
		if size > g.max {
			return g.fail(max(start, 0), fmt.Errorf("%w: a frame of %d bytes announced; at most %d are read", ErrBadFrame, size, g.max))
		}
		g.hdr, g.left = g.hdr[:0], size
	}
	return n, err
}

// fail keeps err for the next Read and delivers the n bytes before the
// bad length line.
func (g *frameGuard) fail(n int, err error) (int, error) {
	g.err = err
	if n > 0 {
		return n, nil
	}
	return 0, err
}

func (g *frameGuard) Close() error { return g.r.Close() }

// guardStream puts a frameGuard on a streaming (RecordIO) response: a 200
// without a Content-Length, which is how mesos-go tells a stream apart.
func guardStream(resp *http.Response) {
	if resp.StatusCode == http.StatusOK && resp.ContentLength < 0 && resp.Body != nil {
		resp.Body = newFrameGuard(resp.Body, MaxFrameBytes)
	}
}

// Bounds of the heartbeat interval a master may announce in SUBSCRIBED.
// Mesos always sends 15 s; a master announcing a tiny interval would make
// the watchdog drop every subscription at once, and a huge one (or +Inf,
// which overflows time.Duration) would turn the watchdog off.
const (
	minHeartbeat = time.Second
	maxHeartbeat = 10 * time.Minute
)

// heartbeatInterval is the interval the watchdog uses for what SUBSCRIBED
// announced (heartbeat_interval_seconds): defaultHeartbeat when it is
// unset, zero, negative or NaN, else clamped to [minHeartbeat,
// maxHeartbeat]. clamped reports that the master's value was out of range.
func heartbeatInterval(seconds float64) (d time.Duration, clamped bool) {
	switch {
	case !(seconds > 0):
		return defaultHeartbeat, false
	case seconds < minHeartbeat.Seconds():
		return minHeartbeat, true
	case seconds > maxHeartbeat.Seconds() || math.IsInf(seconds, 1):
		return maxHeartbeat, true
	}
	return time.Duration(seconds * float64(time.Second)), false
}
