package deploy

import (
	"container/heap"
	"sort"
	"time"

	"github.com/flotilla-sched/flotilla/framework"
)

// ---- which deployments a check judges ----
//
// A check used to judge every running deployment against a full snapshot
// (every task copied) after each batch of scheduler events, so 10,000
// one-app deployments made the launch of their tasks crawl (~140
// tasks/s) and run into their progress deadlines. A deployment's
// progress changes only with its app's tasks or app (each change is a
// scheduler event naming the app), when it starts, or when its deadline
// passes; a check judges those, and all of them after a restore or when
// the event subscription lagged. TestCheckJudgesWhatFullCheckWould checks
// that nothing is left that a check of all would have ended.

// appOfEvent is the app a scheduler event is about ("" for none).
func appOfEvent(ev framework.Event) string {
	switch {
	case ev.Task != nil:
		return ev.Task.AppID
	case ev.App != nil:
		return ev.App.ID
	case ev.Queue != nil:
		return ev.Queue.AppID
	case ev.Status != nil:
		return ev.Status.AppID
	}
	return ""
}

// toJudge returns, sorted by id, the deployments a check must judge at
// now: those of the touched apps, those started since the last check and
// those whose deadline passed; every one when all is set or after
// replaceAll.
func (ds *deployments) toJudge(now time.Time, touched map[string]struct{}, all bool) []*Deployment {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	var out []*Deployment
	if all || ds.all {
		ds.all = false
		clear(ds.fresh)
		out = make([]*Deployment, 0, len(ds.byID))
		for _, d := range ds.byID {
			out = append(out, d)
		}
	} else {
		seen := make(map[*Deployment]bool, len(touched)+len(ds.fresh))
		add := func(d *Deployment) {
			if d != nil && ds.byID[d.ID] == d && !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
		for id := range touched {
			add(ds.byApp[id])
		}
		for id := range ds.fresh {
			add(ds.byApp[id])
		}
		clear(ds.fresh)
		var due []*Deployment
		for len(ds.byDeadline) > 0 && !now.Before(ds.byDeadline[0].Deadline) {
			d := heap.Pop(&ds.byDeadline).(*Deployment)
			if ds.byID[d.ID] == d {
				due = append(due, d)
				add(d)
			}
		}
		for _, d := range due {
			// Back in: one that outlives this check is judged again at
			// once, as the scan of all did.
			heap.Push(&ds.byDeadline, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// deadlineHeap orders deployments by deadline. Ended ones are left in
// and dropped when they reach the top (nextDeadline, toJudge).
type deadlineHeap []*Deployment

func (h deadlineHeap) Len() int { return len(h) }
func (h deadlineHeap) Less(i, j int) bool {
	if !h[i].Deadline.Equal(h[j].Deadline) {
		return h[i].Deadline.Before(h[j].Deadline)
	}
	return h[i].ID < h[j].ID
}
func (h deadlineHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)   { *h = append(*h, x.(*Deployment)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return d
}
