package vsl

import (
	"fmt"
	"math"
)

// The Rhai standard library, as the Rhai book describes it (strings,
// arrays, object maps, numbers, ranges and function pointers), split by
// topic into lib_*.go. Each file adds its functions to a libBuilder by name
// and receiver kind; registerStdlib then defines one Builtin per name that
// dispatches on the kind of its first argument, so a call costs one table
// look-up whatever the number of overloads.

// registerStdlib adds the Rhai standard library to e.
func registerStdlib(e *Env) {
	l := newLibBuilder()
	addCoreLib(l)
	addStringLib(l)
	addArrayLib(l)
	addMapLib(l)
	addMathLib(l)
	l.register(e)
}

// numKinds is the size of tables indexed by Kind.
const numKinds = int(kindCell) + 1

// libFn is one overload: the implementation for one receiver kind.
type libFn struct {
	fn      func(c *Call, args []Value) (Value, error)
	mutates bool // changes args[0] in place
	pure    bool // no effects, result depends only on args
}

// libEntry gathers the overloads of one name.
type libEntry struct {
	byKind [numKinds]libFn
	noArgs func(c *Call, args []Value) (Value, error) // a call with no arguments (PI())
}

// libBuilder collects the standard library before it is registered.
type libBuilder struct {
	entries map[string]*libEntry
	order   []string
}

func newLibBuilder() *libBuilder {
	return &libBuilder{entries: make(map[string]*libEntry)}
}

func (l *libBuilder) entry(name string) *libEntry {
	en := l.entries[name]
	if en == nil {
		en = &libEntry{}
		l.entries[name] = en
		l.order = append(l.order, name)
	}
	return en
}

// add registers fn for the receiver kinds given. A kind registered twice
// for one name is a programming error.
func (l *libBuilder) add(name string, f libFn, kinds ...Kind) {
	en := l.entry(name)
	for _, k := range kinds {
		if en.byKind[k].fn != nil {
			panic("vsl: standard library function " + name + " registered twice for " + k.String())
		}
		en.byKind[k] = f
	}
}

// pure registers a function without effects for the receiver kinds given.
func (l *libBuilder) pure(name string, fn func(c *Call, args []Value) (Value, error), kinds ...Kind) {
	l.add(name, libFn{fn: fn, pure: true}, kinds...)
}

// calls registers a function that calls closures (so it has whatever
// effects they have) but leaves its receiver alone.
func (l *libBuilder) calls(name string, fn func(c *Call, args []Value) (Value, error), kinds ...Kind) {
	l.add(name, libFn{fn: fn}, kinds...)
}

// inPlace registers a function that changes its receiver.
func (l *libBuilder) inPlace(name string, fn func(c *Call, args []Value) (Value, error), kinds ...Kind) {
	l.add(name, libFn{fn: fn, mutates: true}, kinds...)
}

// constant registers a function of no arguments, such as PI().
func (l *libBuilder) constant(name string, v Value) {
	l.entry(name).noArgs = func(*Call, []Value) (Value, error) { return v, nil }
}

// allKinds lists every kind a script can see, for functions of any value.
var allKinds = []Kind{KindUnit, KindBool, KindInt, KindFloat, KindChar, KindString, KindArray, KindMap, KindRange, KindFn, KindHost}

// register defines one dispatching Builtin per name in e.
func (l *libBuilder) register(e *Env) {
	for _, name := range l.order {
		en := l.entries[name]
		table := en.byKind // copied: the closure owns it
		noArgs := en.noArgs
		b := &Builtin{Name: name, Pure: true}
		var mut [numKinds]bool
		allMut := true
		for k, f := range table {
			if f.fn == nil {
				continue
			}
			mut[k] = f.mutates
			b.Mutates = b.Mutates || f.mutates
			allMut = allMut && f.mutates
			b.Pure = b.Pure && f.pure
		}
		if b.Mutates && !allMut {
			b.InPlace = func(recv Value) bool { return recv.kind < kindCell && mut[recv.kind] }
		}
		if b.Mutates {
			// Which receivers this library function changes, for overload
			// when a host package defines a method of the same name (a
			// service's set, a group's remove): host values are not in
			// the table and are never changed by it.
			mk := mut
			b.mutKinds = &mk
		}
		b.Fn = func(c *Call, args []Value) (Value, error) {
			if len(args) == 0 {
				if noArgs != nil {
					return noArgs(c, args)
				}
				return Value{}, ErrNoMatch
			}
			k := args[0].kind
			if k >= kindCell || table[k].fn == nil {
				return Value{}, ErrNoMatch
			}
			return table[k].fn(c, args)
		}
		e.Define(b)
	}
}

// ---- Arguments ----

// intArg returns the integer of v, ok=false when v is not an i64.
func intArg(v Value) (int64, bool) { return v.AsInt(), v.kind == KindInt }

// numArg returns the number of an i64 or f64 v as a float.
func numArg(v Value) (float64, bool) {
	switch v.kind {
	case KindInt:
		return float64(v.AsInt()), true
	case KindFloat:
		return v.AsFloat(), true
	}
	return 0, false
}

// textArg returns the text of a string or char v (a char is a one-char
// string to the functions that search or build text).
func textArg(v Value) (string, bool) {
	switch v.kind {
	case KindString:
		return v.AsString(), true
	case KindChar:
		return string(v.AsChar()), true
	}
	return "", false
}

// fnArg reports whether v is a function value.
func fnArg(v Value) bool { return v.kind == KindFn }

// ---- Positions ----

// absPos turns a position counted from the end (start < 0) into one counted
// from the beginning of a sequence of n items, clamped at 0.
func absPos(start int64, n int) int {
	if start >= 0 {
		if start > int64(n) {
			return n
		}
		return int(start)
	}
	back := uint64(-(start + 1)) + 1 // |start| without overflowing MinInt64
	if back > uint64(n) {
		return 0
	}
	return n - int(back)
}

// offsetLen resolves Rhai's (start, len) arguments against a sequence of n
// items: a negative start counts from the end, a start past the end selects
// nothing, a len ≤ 0 selects nothing, and a len past the end stops there.
// It returns the first item and the number of items selected.
func offsetLen(n int, start, length int64) (int, int) {
	if start >= int64(n) {
		return n, 0
	}
	off := absPos(start, n)
	if length <= 0 {
		return off, 0
	}
	if length > int64(n-off) {
		return off, n - off
	}
	return off, int(length)
}

// rangeLen turns a range into Rhai's (start, len) arguments: the start
// clamped at 0 and the end at the start.
func rangeLen(r *Range) (start, length int64) {
	start = max(r.Lo, 0)
	end := max(r.Hi, start)
	length = end - start
	if r.Inclusive && length < math.MaxInt64 {
		length++
	}
	return start, length
}

// elemIndex resolves a single position (negative counts from the end);
// ok=false when it lies outside n items.
func elemIndex(i int64, n int) (int, bool) {
	if i < 0 {
		back := uint64(-(i + 1)) + 1
		if back > uint64(n) {
			return 0, false
		}
		return n - int(back), true
	}
	if i >= int64(n) {
		return 0, false
	}
	return int(i), true
}

// ---- Closures ----

// takes reports whether the function value fn accepts n arguments, so that
// a builtin can pass an element's index to closures that declare a
// parameter for it (Rhai's |x, i| forms).
func takes(fn Value, n int) bool {
	f := fn.AsFn()
	if f == nil {
		return false
	}
	n += len(f.curried)
	switch {
	case f.code != nil:
		return f.code.nparams == n
	case len(f.overloads) > 0:
		return pickOverload(f.overloads, n) != nil
	}
	return false
}

// elemCaller calls a callback on array elements, adding the index when the
// callback takes one more parameter than the element.
type elemCaller struct {
	c     *Call
	fn    Value
	index bool
}

func newElemCaller(c *Call, fn Value, nargs int) elemCaller {
	return elemCaller{c: c, fn: fn, index: takes(fn, nargs+1) && !takes(fn, nargs)}
}

// call1 calls fn(x[, i]).
func (ec elemCaller) call1(x Value, i int) (Value, error) {
	if ec.index {
		return ec.c.CallFn(ec.fn, x, Int(int64(i)))
	}
	return ec.c.CallFn(ec.fn, x)
}

// call2 calls fn(a, b[, i]).
func (ec elemCaller) call2(a, b Value, i int) (Value, error) {
	if ec.index {
		return ec.c.CallFn(ec.fn, a, b, Int(int64(i)))
	}
	return ec.c.CallFn(ec.fn, a, b)
}

// test calls a predicate fn(x[, i]), which must return a bool.
func (ec elemCaller) test(x Value, i int) (bool, error) {
	v, err := ec.call1(x, i)
	if err != nil {
		return false, err
	}
	return predicateResult(v)
}

// predicateResult checks that a predicate returned a bool.
func predicateResult(v Value) (bool, error) {
	b, ok := v.Truth()
	if !ok {
		return false, fmt.Errorf("the function must return a bool, not %s", v.TypeName())
	}
	return b, nil
}
