package vsl

import (
	"context"
	"io"
)

// Limits bound what one run of a script may consume. Exceeding a limit is
// an ordinary runtime error with the position where it happened.
type Limits struct {
	// MaxOperations is the operation budget of one run: every statement,
	// loop iteration and function call costs one. 0 means unlimited.
	MaxOperations int64
	// MaxCallDepth bounds nested calls of script functions and closures.
	MaxCallDepth int
	// MaxStringSize bounds the length of a string in bytes (0: unlimited).
	MaxStringSize int
	// MaxArraySize bounds the number of elements of an array (0: unlimited).
	MaxArraySize int
	// MaxMapSize bounds the number of properties of a map (0: unlimited).
	MaxMapSize int
}

// DefaultLimits returns the limits used when none are given: one million
// operations, a call depth of 64, strings of 1 MiB, arrays and maps of
// 100,000 elements.
func DefaultLimits() Limits {
	return Limits{
		MaxOperations: 1_000_000,
		MaxCallDepth:  64,
		MaxStringSize: 1 << 20,
		MaxArraySize:  100_000,
		MaxMapSize:    100_000,
	}
}

// Thread is the state of one run: its budget, its output, its context and
// its value stack. A Thread is used by one goroutine at a time; reuse one
// (Reset) to run many times without allocating.
type Thread struct {
	ctx     context.Context
	limits  Limits
	ops     int64 // operations left in the current window
	win     int64 // size of the current window
	used    int64 // operations charged in earlier windows
	depth   int
	stack   []Value
	frames  []*frame
	nframes int
	calls   []*Call // pooled Call records of builtins in progress
	ncalls  int
	insts   map[*modCode]*module // module instances of the Program.Run in progress

	// Out receives print output, one line per call ("\n" appended).
	// Nil discards it.
	Out io.Writer
	// DebugOut receives debug output; nil sends it to Out.
	DebugOut io.Writer
	// Host is the embedding program's per-run data (the mail layer puts
	// the transaction here); builtins reach it through Call.Thread().
	Host any
}

// NewThread returns a thread with the given limits.
func NewThread(lim Limits) *Thread {
	th := &Thread{limits: lim, stack: make([]Value, 0, 256)}
	th.Reset(context.Background())
	return th
}

// Limits returns the thread's limits.
func (th *Thread) Limits() Limits { return th.limits }

// SetLimits changes the thread's limits; it takes effect at the next Reset.
func (th *Thread) SetLimits(lim Limits) { th.limits = lim }

// Reset prepares the thread for a new run under ctx: the operation budget
// is refilled and the stack emptied.
func (th *Thread) Reset(ctx context.Context) {
	if ctx == nil {
		ctx = context.Background()
	}
	th.ctx = ctx
	th.used = 0
	th.depth = 0
	th.stack = th.stack[:0]
	th.nframes = 0
	th.ncalls = 0
	th.win = th.window()
	th.ops = th.win
}

// Operations returns the number of operations charged since the last Reset.
func (th *Thread) Operations() int64 { return th.used + (th.win - th.ops) }

// checkWindow is how many operations run between two looks at the context.
const checkWindow = 1 << 12

// window returns the number of operations the next window may use.
func (th *Thread) window() int64 {
	w := int64(checkWindow)
	if max := th.limits.MaxOperations; max > 0 {
		if left := max - th.used; left < w {
			w = left
		}
	}
	return w
}
