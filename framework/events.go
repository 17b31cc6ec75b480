package framework

import "sync"

// bus fans events out to subscribers without ever blocking the publisher
// (the scheduler loop): a full subscriber loses the event and is marked
// lagged; its next delivered event is an EventLagged marker.
type bus struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

// Subscription receives events; see Scheduler.Subscribe.
type Subscription struct {
	// C delivers events in order; it is closed by Close.
	C <-chan Event

	ch     chan Event
	b      *bus
	lagged bool
	closed bool
}

func (b *bus) subscribe(buffer int) *Subscription {
	if buffer < 1 {
		buffer = 1
	}
	ch := make(chan Event, buffer)
	sub := &Subscription{C: ch, ch: ch, b: b}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = map[*Subscription]struct{}{}
	}
	b.subs[sub] = struct{}{}
	return sub
}

func (b *bus) publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.subs {
		if sub.lagged {
			select {
			case sub.ch <- Event{Type: EventLagged, At: e.At}:
				sub.lagged = false
			default:
				continue
			}
		}
		select {
		case sub.ch <- e:
		default:
			sub.lagged = true
		}
	}
}

// Close ends the subscription and closes C.
func (sub *Subscription) Close() {
	b := sub.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if sub.closed {
		return
	}
	sub.closed = true
	delete(b.subs, sub)
	close(sub.ch)
}
