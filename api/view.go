package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/flotilla-sched/flotilla/framework"
)

// ViewPath is where the leader serves its discovery view to standbys and
// edge nodes (discovery.Follower): apps and tasks, long-polled by
// generation. Behind auth like every route; a standby forwards it to the
// leader like every other request.
const ViewPath = "/flotilla/v1/view"

// viewWaitMax bounds one long poll, so a follower learns within it that
// its leader is gone even without a TCP reset.
const viewWaitMax = 30 * time.Second

// viewRecheck bounds how long a long poll can miss a change of
// Config.View that no scheduler event announced.
const viewRecheck = 50 * time.Millisecond

// currentView is the view to serve: what this replica's DNS and gateway
// serve (Config.View), which on a new leader can still be the view it
// followed, until its own covers it; else the scheduler's once it has
// settled with the master. nil: nothing true to serve yet.
func (s *Server) currentView() *framework.Snapshot {
	if s.cfg.View != nil {
		if v := s.cfg.View(); v != nil {
			return v
		}
	}
	if snap := s.cfg.Scheduler.Snapshot(); snap.Settled {
		return snap
	}
	return nil
}

// view answers GET /flotilla/v1/view?generation=G&wait=25s: at once when
// the scheduler's generation differs from G (or G is absent), else when it
// changes, or 304 when wait runs out. The body is the snapshot's apps and
// tasks only: the queue and progress are the leader's business.
func (s *Server) view(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var after uint64
	have := false
	if g := q.Get("generation"); g != "" {
		v, err := strconv.ParseUint(g, 10, 64)
		if err != nil {
			return errorf(http.StatusBadRequest, "generation must be the number a previous answer carried, got %q", g)
		}
		after, have = v, true
	}
	wait := time.Duration(0)
	if ws := q.Get("wait"); ws != "" {
		d, err := time.ParseDuration(ws)
		if err != nil || d < 0 {
			return errorf(http.StatusBadRequest, "wait must be a duration such as 25s, got %q", ws)
		}
		wait = min(d, viewWaitMax)
	}
	snap := s.currentView()
	if snap == nil {
		// Before reconciliation is answered adopted tasks lack their state
		// and health: a follower keeps the view it has rather than take
		// this one (discovery.Follower retries).
		return errorf(http.StatusServiceUnavailable, "this leader has not settled with the Mesos master yet; keep the last view and retry")
	}
	if have && snap.Generation == after && wait > 0 {
		sub := s.cfg.Scheduler.Subscribe(16)
		defer sub.Close()
		timer := s.clk.NewTimer(wait)
		defer timer.Stop()
		for snap.Generation == after {
			// Config.View is rebuilt by its own goroutine after the
			// scheduler's events: look again shortly after each, and every
			// viewRecheck in any case.
			recheck := s.clk.NewTimer(viewRecheck)
			var rebuilt <-chan struct{}
			if s.cfg.ViewChanged != nil {
				rebuilt = s.cfg.ViewChanged()
				if v := s.currentView(); v != nil && v.Generation != after {
					recheck.Stop()
					snap = v
					break
				}
			}
			select {
			case <-rebuilt:
			case <-r.Context().Done():
				recheck.Stop()
				return nil
			case <-timer.C():
				recheck.Stop()
				w.WriteHeader(http.StatusNotModified)
				return nil
			case _, ok := <-sub.C:
				if !ok {
					recheck.Stop()
					w.WriteHeader(http.StatusNotModified)
					return nil
				}
			case <-recheck.C():
			}
			recheck.Stop()
			if !s.isLeader() {
				// Fenced or abdicated while the poll waited: the follower
				// must learn now that this view is no longer the leader's
				// (its age starts growing), not when the wait runs out.
				return errorf(http.StatusServiceUnavailable, "this replica no longer leads; follow the new leader")
			}
			if v := s.currentView(); v != nil {
				snap = v
			}
		}
	} else if have && snap.Generation == after {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	b, err := json.Marshal(framework.Snapshot{At: snap.At, Apps: snap.Apps, Tasks: snap.Tasks,
		Connected: snap.Connected, Settled: snap.Settled, Generation: snap.Generation})
	if err != nil {
		return err
	}
	writeRaw(w, http.StatusOK, b)
	return nil
}
