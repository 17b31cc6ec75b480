package gateway

import "time"

// DefaultRouteWait is Config.RouteWait's default.
const DefaultRouteWait = time.Second

// A gateway's routes can trail the cluster: on a standby or an edge node
// they come from the leader's view, followed over HTTP, and a leader that
// kills a roll's old tasks makes them unpublished in the same step as it
// sends the kills. On a loaded machine the kill can land before the
// follower's view does; the gateway then holds only backends that refuse
// connections, while the tasks that replaced them are running (bench/chaos
// saw 0.3 s of 503s on a standby's gateway this way). So a request that
// could be sent again, and found every backend of its app failing, waits
// up to Config.RouteWait for the next route table and tries the app's
// backends in it: the view that removes the dead tasks also brings their
// replacements. An app with no backends at all answers 503 at once: there
// is nothing a late view would fix.

// routesChanged returns a channel closed at the next Update.
func (g *Gateway) routesChanged() <-chan struct{} {
	for {
		if ch := g.routesCh.Load(); ch != nil {
			return *ch
		}
		ch := make(chan struct{})
		if g.routesCh.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// routesUpdated wakes the requests waiting for new routes (Update calls
// it after storing the new table).
func (g *Gateway) routesUpdated() {
	if ch := g.routesCh.Swap(nil); ch != nil {
		close(*ch)
	}
}

// awaitRoutes waits, at most RouteWait from now, for a route table newer
// than the one st's pool is from, and moves st to the app's pool in it. It
// reports whether st has a new pool to try.
func (g *Gateway) awaitRoutes(st *reqState) bool {
	if g.cfg.RouteWait <= 0 || len(st.pool.backends) == 0 {
		return false
	}
	key := poolKey(st.pool.app.id, st.pool.index)
	// newer: a table with a backend of the app in rotation. Every Update
	// builds new pools, also when only another app changed, and every
	// backend this request tried is ejected.
	newer := func() bool {
		p := g.cur.Load().pools[key]
		if p == nil || p == st.pool || p.app != st.pool.app {
			return false
		}
		now := g.clock.Now().UnixNano()
		for _, b := range p.backends {
			if b.ejectedUntil.Load() <= now {
				st.pool = p
				return true
			}
		}
		return false
	}
	changed := g.routesChanged()
	if newer() {
		return true
	}
	g.routeWaits.Add(1)
	t := g.clock.NewTimer(g.cfg.RouteWait)
	defer t.Stop()
	for {
		select {
		case <-changed:
		case <-t.C():
			return newer()
		}
		changed = g.routesChanged()
		if newer() {
			return true
		}
	}
}
