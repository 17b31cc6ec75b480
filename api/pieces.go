package api

import (
	"io"
	"net"
	"net/http"
	"strconv"
)

// The large answers (GET /v2/groups with tasks, 76 MiB for 10,000 apps
// and 100,000 tasks; GET /v2/apps, 9 MiB) are made of kept byte slices:
// the apps' fragments (fragments.go) and the groups' chunks
// (grouptree.go), with a few bytes of punctuation between them. They are
// written as they are: the answer's length is summed first (Content-Length,
// no chunked framing), then the pieces go to the connection as one
// net.Buffers through net/http's ReadFrom, which hands them to the
// socket's: writev of up to 1,024 pieces per call, where a Write per piece
// goes through net/http's buffers (a small piece is copied there, then
// flushed in a write of its own before the next large one) and a 64 KiB
// bufio.Writer copies every byte once more.

// pieces is an answer as the slices it is written from. Nothing may
// change a slice once added.
type pieces struct {
	bufs net.Buffers
	n    int
}

func (p *pieces) add(b []byte) {
	p.bufs = append(p.bufs, b)
	p.n += len(b)
}

// write sends the answer with status 200 and its Content-Length.
// perPiece writes a Write per piece instead: the benchmarks' A/B.
func (p *pieces) write(w http.ResponseWriter, perPiece bool) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(p.n))
	w.WriteHeader(http.StatusOK)
	if rf := readerFrom(w); rf != nil && !perPiece {
		_, err := rf.ReadFrom(&p.bufs)
		return err
	}
	for _, b := range p.bufs {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// readerFrom is w's io.ReaderFrom, looking through wrappers that have
// Unwrap (statusWriter) and nothing else to do on a write.
func readerFrom(w http.ResponseWriter) io.ReaderFrom {
	for {
		if rf, ok := w.(io.ReaderFrom); ok {
			return rf
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
}
