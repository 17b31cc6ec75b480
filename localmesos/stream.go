package localmesos

import (
	"bytes"
	"net/http"
	"runtime"
	"sync"

	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/framing"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"
)

// maxFrame is mesos-go's RecordIO reader cap; no event may reach it.
const maxFrame = 4 << 20

// maxQueued bounds the events waiting for one framework's connection.
const maxQueued = 1 << 20

// stream is one SUBSCRIBE connection. Producers enqueue events under the
// stream's own small lock; the connection's handler goroutine is the only
// writer, so the master lock is never held across network I/O and a burst
// of events becomes one write.
type stream struct {
	id    string
	codec encoding.Codec
	fw    *framework

	mu       sync.Mutex
	q        []*scheduler.Event
	final    *scheduler.Event
	ending   bool
	overflow bool

	wake chan struct{}
	done chan struct{}
	once sync.Once
}

func newStream(id string, codec encoding.Codec, fw *framework) *stream {
	return &stream{id: id, codec: codec, fw: fw, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// send queues an event. Events must not be mutated after they are queued.
func (s *stream) send(ev *scheduler.Event) {
	s.mu.Lock()
	if s.ending {
		s.mu.Unlock()
		return
	}
	if len(s.q) >= maxQueued {
		// A framework that stops reading must not grow the master
		// without bound: drop its connection, as a broken one.
		s.overflow = true
		s.q = nil
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
		return
	}
	s.q = append(s.q, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// close ends the stream after writing what is queued and, if given, one
// last event (an ERROR).
func (s *stream) close(final *scheduler.Event) {
	s.mu.Lock()
	if !s.ending {
		s.ending = true
		s.final = final
	}
	s.mu.Unlock()
	s.once.Do(func() { close(s.done) })
}

func (s *stream) overflowed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overflow
}

func (s *stream) take() ([]*scheduler.Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.q
	s.q = nil
	if s.ending && s.final != nil {
		q = append(q, s.final)
		s.final = nil
	}
	return q, s.ending
}

// serve writes the stream until it is closed, the client goes away or a
// write fails. It runs in the SUBSCRIBE handler's goroutine.
func (m *Master) serveStream(w http.ResponseWriter, r *http.Request, s *stream, log *logrus.Entry) {
	flusher, _ := w.(http.Flusher)
	var buf bytes.Buffer
	frames := recordio.NewWriter(&buf)
	enc := s.codec.NewEncoder(func() framing.Writer { return frames })
	if s.codec.Type == codecs.MediaTypeJSON {
		// The generated (ffjson) encoder writes compact JSON already; the
		// codec's json.Marshal would re-scan and copy every event.
		enc = encoding.EncoderFunc(func(m encoding.Marshaler) error {
			b, err := m.MarshalJSON()
			if err != nil {
				return err
			}
			return frames.WriteFrame(b)
		})
	}
	hb := m.clock.NewTicker(m.cfg.Heartbeat)
	defer hb.Stop()
	heartbeat := &scheduler.Event{Type: scheduler.Event_HEARTBEAT}
	write := func(evs []*scheduler.Event) bool {
		buf.Reset()
		for _, ev := range evs {
			before := buf.Len()
			if err := enc.Encode(ev); err != nil {
				log.WithError(err).WithField("event", ev.Type.String()).Error("encode event")
				continue
			}
			if buf.Len()-before > maxFrame {
				log.WithField("event", ev.Type.String()).Error("event exceeds the 4 MiB frame limit; dropped")
				buf.Truncate(before)
			}
		}
		if buf.Len() == 0 {
			return true
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			log.WithError(err).Debug("stream write failed")
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	for {
		select {
		case <-s.wake:
		case <-hb.C():
			s.send(heartbeat)
		case <-s.done:
		case <-r.Context().Done():
			m.streamGone(s, "client went away")
			return
		}
		// Let producers that are running right now add to the batch:
		// one write for many events saves a syscall per event under load
		// and costs nothing when idle.
		runtime.Gosched()
		if s.overflowed() {
			log.WithField("queued", maxQueued).Warn("framework does not read its events; dropping its stream")
			m.streamGone(s, "event queue overflow")
			return
		}
		evs, ending := s.take()
		if !write(evs) {
			m.streamGone(s, "write failed")
			return
		}
		if ending {
			return
		}
	}
}

// eventCodec picks the codec for a SUBSCRIBE response from Accept (and
// Message-Accept for application/recordio) the way Mesos does: JSON when
// acceptable, else protobuf. It returns the Content-Type to answer with.
func eventCodec(r *http.Request) (codec encoding.Codec, contentType string, messageType string, ok bool) {
	accept := r.Header.Values("Accept")
	if acceptsType(accept, "application/recordio") && !acceptsType(accept, string(codecs.MediaTypeJSON)) && !acceptsType(accept, string(codecs.MediaTypeProtobuf)) {
		ma := r.Header.Values("Message-Accept")
		switch {
		case acceptsType(ma, string(codecs.MediaTypeJSON)):
			return codecs.ByMediaType[codecs.MediaTypeJSON], "application/recordio", string(codecs.MediaTypeJSON), true
		case acceptsType(ma, string(codecs.MediaTypeProtobuf)):
			return codecs.ByMediaType[codecs.MediaTypeProtobuf], "application/recordio", string(codecs.MediaTypeProtobuf), true
		}
		return encoding.Codec{}, "", "", false
	}
	switch {
	case acceptsType(accept, string(codecs.MediaTypeJSON)):
		return codecs.ByMediaType[codecs.MediaTypeJSON], string(codecs.MediaTypeJSON), "", true
	case acceptsType(accept, string(codecs.MediaTypeProtobuf)):
		return codecs.ByMediaType[codecs.MediaTypeProtobuf], string(codecs.MediaTypeProtobuf), "", true
	}
	return encoding.Codec{}, "", "", false
}
