package policy

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestStageContextDeadline(t *testing.T) {
	c, stop := withStageDeadline(context.Background(), 20*time.Millisecond)
	defer stop()
	if err := c.Err(); err != nil {
		t.Fatalf("Err before the deadline = %v", err)
	}
	if d, ok := c.Deadline(); !ok || time.Until(d) > 20*time.Millisecond {
		t.Errorf("Deadline = %v, %v", d, ok)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the deadline")
	}
	if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Err after the deadline = %v", err)
	}
	if err := context.Cause(c); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Cause after the deadline = %v", err)
	}
}

// Err alone (what the interpreter asks) sees the deadline without Done
// having been called.
func TestStageContextErrWithoutDone(t *testing.T) {
	c, stop := withStageDeadline(context.Background(), time.Millisecond)
	defer stop()
	time.Sleep(2 * time.Millisecond)
	if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Err = %v", err)
	}
	if c.timed != nil {
		t.Error("Err made the timer context")
	}
}

func TestStageContextStop(t *testing.T) {
	c, stop := withStageDeadline(context.Background(), time.Hour)
	done := c.Done() // made before the stop
	stop()
	select {
	case <-done:
	default:
		t.Error("Done not closed by stop")
	}
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Err after stop = %v", err)
	}

	c2, stop2 := withStageDeadline(context.Background(), time.Hour)
	stop2()
	select {
	case <-c2.Done(): // made after the stop: already closed
	default:
		t.Error("Done made after stop is open")
	}
}

func TestStageContextParent(t *testing.T) {
	parent, cancel := context.WithCancelCause(context.Background())
	c, stop := withStageDeadline(parent, time.Hour)
	defer stop()
	derived, cancelDerived := context.WithCancel(c)
	defer cancelDerived()
	why := errors.New("shutting down")
	cancel(why)
	for _, ctx := range []context.Context{c, derived} {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed when the parent is cancelled")
		}
		if err := ctx.Err(); !errors.Is(err, context.Canceled) {
			t.Errorf("Err = %v", err)
		}
		if err := context.Cause(ctx); err != why {
			t.Errorf("Cause = %v, want the parent's", err)
		}
	}

	early, cancelEarly := context.WithTimeout(context.Background(), time.Minute)
	defer cancelEarly()
	c3, stop3 := withStageDeadline(early, time.Hour)
	defer stop3()
	if d, _ := c3.Deadline(); time.Until(d) > time.Minute {
		t.Errorf("Deadline = %v, want the parent's earlier one", d)
	}
}
