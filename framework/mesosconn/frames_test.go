package mesosconn

import (
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestFrameGuard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		max      uint64
		// want: the bytes passed through. Before a bad length line, the
		// part of it read in earlier reads may pass too, never its newline.
		want string
		bad  bool // ends with ErrBadFrame (else io.EOF)
	}{
		{name: "frames", in: "2\n{}3\nabc0\n1\nx", max: 10, want: "2\n{}3\nabc0\n1\nx"},
		{name: "spaces as mesos-go trims them", in: " 2\r\n{}", max: 10, want: " 2\r\n{}"},
		{name: "truncated frame is not a framing error", in: "9\nabc", max: 10, want: "9\nabc"},
		{name: "at the cap", in: "10\n0123456789", max: 10, want: "10\n0123456789"},
		{name: "over the cap", in: "2\n{}11\n0123456789a", max: 10, want: "2\n{}", bad: true},
		{name: "2^63 would panic mesos-go", in: "2\n{}9223372036854775808\nx", max: 1 << 22, want: "2\n{}", bad: true},
		{name: "not a number", in: "-1\nx", max: 10, bad: true},
		{name: "length line too long", in: "1\na000000000000000000001\nb", max: 10, want: "1\na", bad: true},
		{name: "no newline within 20 bytes", in: strings.Repeat("1", 40), max: 10, bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newFrameGuard(io.NopCloser(&chunkReader{b: []byte(tc.in)}), tc.max)
			got, err := io.ReadAll(g)
			ok := string(got) == tc.want
			if tc.bad {
				ok = strings.HasPrefix(tc.in, string(got)) && strings.HasPrefix(string(got), tc.want) &&
					!strings.Contains(string(got[len(tc.want):]), "\n")
			}
			if !ok {
				t.Errorf("passed %q, want %q", got, tc.want)
			}
			if errors.Is(err, ErrBadFrame) != tc.bad || (!tc.bad && err != nil) {
				t.Errorf("error %v, want bad frame %v", err, tc.bad)
			}
		})
	}
}

func TestHeartbeatInterval(t *testing.T) {
	t.Parallel()
	tests := []struct {
		seconds float64
		want    time.Duration
		clamped bool
	}{
		{0, defaultHeartbeat, false},
		{-5, defaultHeartbeat, false},
		{math.NaN(), defaultHeartbeat, false},
		{15, 15 * time.Second, false},
		{1, time.Second, false},
		{600, 10 * time.Minute, false},
		{1e-9, minHeartbeat, true},
		{601, maxHeartbeat, true},
		{1e308, maxHeartbeat, true},
		{math.Inf(1), maxHeartbeat, true},
	}
	for _, tc := range tests {
		got, clamped := heartbeatInterval(tc.seconds)
		if got != tc.want || clamped != tc.clamped {
			t.Errorf("heartbeatInterval(%v) = %v, %v; want %v, %v", tc.seconds, got, clamped, tc.want, tc.clamped)
		}
	}
}
