package delegate

import (
	"context"
	"fmt"
	"sync"
)

// endedMemory is how many ended delegation ids Waiters remembers, to take
// and drop a late or duplicate return rather than have the filter bounce it.
const endedMemory = 4096

// Waiters is the in-memory Sink of a front end that waits for its
// delegations to come back (the milter): Wait registers a delegation's id,
// before the message is sent, and the message arrives on the channel it
// returns. Its methods are safe for concurrent use.
type Waiters struct {
	mu      sync.Mutex
	waiting map[string]chan Returned
	// ended remembers the ids of the last endedMemory delegations that
	// came back or were given up; ring holds them in order, next is the
	// slot of the next one.
	ended map[string]struct{}
	ring  []string
	next  int
}

// NewWaiters returns an empty registry.
func NewWaiters() *Waiters {
	return &Waiters{waiting: map[string]chan Returned{}, ended: map[string]struct{}{}}
}

var _ Sink = (*Waiters)(nil)

// Wait registers the delegation id and returns the channel its message
// will arrive on, at most once. The registration lasts until the message
// comes back or ctx ends, whichever comes first: cancel ctx once done with
// the delegation. The channel is never closed; select on ctx.Done() as
// well. Registering an id that is already waited for is an error wrapping
// ErrDuplicateID.
func (w *Waiters) Wait(ctx context.Context, id string) (<-chan Returned, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, dup := w.waiting[id]; dup {
		return nil, fmt.Errorf("delegation %q: %w", id, ErrDuplicateID)
	}
	ch := make(chan Returned, 1)
	w.waiting[id] = ch
	delete(w.ended, id)
	context.AfterFunc(ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.waiting[id] == ch {
			delete(w.waiting, id)
			w.end(id)
		}
	})
	return ch, nil
}

// Return hands a returned message to the delegation waiting for its id;
// it never blocks. It returns an error wrapping ErrEnded for an id that
// was waited for recently but no longer is, and one wrapping ErrUnknownID
// for any other id.
func (w *Waiters) Return(_ context.Context, m Returned) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.waiting[m.ID]
	if !ok {
		if _, ended := w.ended[m.ID]; ended {
			return fmt.Errorf("delegation %q: %w", m.ID, ErrEnded)
		}
		return fmt.Errorf("delegation %q: %w", m.ID, ErrUnknownID)
	}
	delete(w.waiting, m.ID)
	w.end(m.ID)
	ch <- m // buffered for this one message
	return nil
}

// Len returns how many delegations are waiting.
func (w *Waiters) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.waiting)
}

// end remembers id as ended, forgetting the oldest one when full. The
// caller holds mu.
func (w *Waiters) end(id string) {
	if _, ok := w.ended[id]; ok {
		return
	}
	if len(w.ring) < endedMemory {
		w.ring = append(w.ring, id)
	} else {
		delete(w.ended, w.ring[w.next])
		w.ring[w.next] = id
		w.next = (w.next + 1) % endedMemory
	}
	w.ended[id] = struct{}{}
}
