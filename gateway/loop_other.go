//go:build !linux

package gateway

import (
	"errors"
	"net"

	"github.com/valyala/fasthttp"

	"github.com/flotilla-sched/flotilla/internal/connlimit"
)

// The event loop is epoll's; elsewhere Config.EventLoop is refused.
const EventLoopSupported = false

type loops struct{}

type loopListener struct {
	fd  int
	l   Listener
	lim *connlimit.Listener
	srv *fasthttp.Server
}

var errNoLoop = errors.New("gateway: the event loop needs Linux")

func (g *Gateway) startLoops([]loopListener) (*loops, error) { return nil, errNoLoop }
func takeListener(net.Listener) (int, error)                 { return -1, errNoLoop }
func (ls *loops) shutdown(<-chan struct{}) error             { return nil }
func closeLoopListeners([]loopListener)                      {}

type pendingAnswer struct{}

func pendingOf(*fasthttp.RequestCtx) *pendingAnswer            { return nil }
func (g *Gateway) resume(*fasthttp.RequestCtx, *pendingAnswer) {}
