package vsl

import "context"

// Context returns the context the thread's current run honours (set by
// Reset). Builtins that block (DNS, commands) pass it on.
func (th *Thread) Context() context.Context { return th.ctx }
