package policy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// stageContext bounds a stage's run by a deadline without the timer that
// context.WithDeadline starts (an allocation and two updates of the
// runtime's timer heap per stage, a few percent of a milter's CPU). The
// interpreter only asks Err, between windows of operations, and Err reads
// the clock; a builtin that waits, or asks for a value (Done, Value: a
// dialer, context.Cause, a derived context), gets a real deadline context,
// made on its first use, and from then on the same answers as from it.
type stageContext struct {
	parent   context.Context
	deadline time.Time
	stopped  atomic.Bool

	mu     sync.Mutex
	timed  context.Context // made on demand by real
	cancel context.CancelFunc
}

// withStageDeadline returns parent bounded by d from now, and the function
// that releases it, as context.WithTimeout does.
func withStageDeadline(parent context.Context, d time.Duration) (*stageContext, func()) {
	c := &stageContext{parent: parent, deadline: time.Now().Add(d)}
	return c, c.stop
}

// real returns the deadline context standing for c, made on first use.
func (c *stageContext) real() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timed == nil {
		c.timed, c.cancel = context.WithDeadline(c.parent, c.deadline)
		if c.stopped.Load() {
			c.cancel()
		}
	}
	return c.timed
}

// Deadline returns the earlier of the stage's deadline and the parent's.
func (c *stageContext) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

// Done returns a channel closed when the deadline passes, the parent is
// done or the stage's run ends.
func (c *stageContext) Done() <-chan struct{} { return c.real().Done() }

// Value looks key up in the real context (context.Cause and derived
// contexts find its cancellation there).
func (c *stageContext) Value(key any) any { return c.real().Value(key) }

// Err is the parent's error, context.DeadlineExceeded once the deadline
// has passed, or context.Canceled once the stage's run has ended.
func (c *stageContext) Err() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	if c.stopped.Load() {
		return context.Canceled
	}
	return nil
}

// stop ends the stage's run: Done is closed, Err is context.Canceled (or
// what it already was).
func (c *stageContext) stop() {
	c.stopped.Store(true)
	c.mu.Lock()
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
}
