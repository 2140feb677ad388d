package vsl

import (
	"fmt"
	"math"
)

// Functions of any value (to_string, to_debug), ranges, function pointers
// and host values.

func addCoreLib(l *libBuilder) {
	R := KindRange

	l.pure("to_string", toStringFn, allKinds...)
	l.pure("to_debug", toDebugFn, allKinds...)

	l.pure("range", rangeFn, KindInt, R)
	l.pure("start", rangeStart, R)
	l.pure("end", rangeEnd, R)
	l.pure("is_inclusive", rangeIsInclusive, R)
	l.pure("is_exclusive", rangeIsExclusive, R)
	l.pure("contains", rangeContains, R)
	l.pure("len", rangeLenFn, R)
	l.pure("is_empty", rangeIsEmpty, R)

	l.pure("name", fnName, KindFn)
	l.pure("is_anonymous", fnIsAnonymous, KindFn)

	l.calls("contains", hostContains, KindHost)
}

func toStringFn(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	if args[0].kind == KindString {
		return args[0], nil
	}
	return String(ToString(args[0])), nil
}

func toDebugFn(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return String(Debug(args[0])), nil
}

// range(from, to): the range from..to; range(from, to, step) and
// range(r, step): an array of the integers of a range taken every step
// (a negative step counts down from from to to).
func rangeFn(c *Call, args []Value) (Value, error) {
	var from, to, step int64
	var ok bool
	switch len(args) {
	case 2:
		if r := args[0].AsRange(); r != nil {
			from, to = r.Lo, r.End()
			if step, ok = intArg(args[1]); !ok {
				return Value{}, ErrNoMatch
			}
			break
		}
		from, ok1 := intArg(args[0])
		to, ok2 := intArg(args[1])
		if !ok1 || !ok2 {
			return Value{}, ErrNoMatch
		}
		return NewRange(from, to, false), nil
	case 3:
		var ok1, ok2, ok3 bool
		from, ok1 = intArg(args[0])
		to, ok2 = intArg(args[1])
		step, ok3 = intArg(args[2])
		if !ok1 || !ok2 || !ok3 {
			return Value{}, ErrNoMatch
		}
	default:
		return Value{}, ErrNoMatch
	}
	if step == 0 {
		return Value{}, fmt.Errorf("the step of a range cannot be 0")
	}
	var n uint64
	switch {
	case step > 0 && to > from:
		n = ceilDiv(uint64(to)-uint64(from), uint64(step))
	case step < 0 && from > to:
		n = ceilDiv(uint64(from)-uint64(to), uint64(-(step+1))+1)
	}
	if err := c.CheckArray(int(min(n, 1<<40))); err != nil {
		return Value{}, err
	}
	out := make([]Value, n)
	x := from
	for i := range out {
		out[i] = Int(x)
		x += step // past the last element this may wrap, unused
	}
	return NewArray(out), nil
}

func rangeStart(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Int(args[0].AsRange().Lo), nil
}

func rangeEnd(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Int(args[0].AsRange().Hi), nil
}

func rangeIsInclusive(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Bool(args[0].AsRange().Inclusive), nil
}

func rangeIsExclusive(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Bool(!args[0].AsRange().Inclusive), nil
}

// contains(r, i): the integer lies in the range.
func rangeContains(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 || args[1].kind != KindInt {
		return Value{}, ErrNoMatch
	}
	return Bool(args[0].AsRange().Contains(args[1].AsInt())), nil
}

// len(r): the number of integers in the range.
func rangeLenFn(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	r := args[0].AsRange()
	var n uint64
	switch {
	case r.Inclusive && r.Hi >= r.Lo:
		n = uint64(r.Hi) - uint64(r.Lo) + 1 // 0 when it wrapped around
		if n == 0 {
			return Value{}, errOverflow
		}
	case !r.Inclusive && r.Hi > r.Lo:
		n = uint64(r.Hi) - uint64(r.Lo)
	}
	if n > math.MaxInt64 {
		return Value{}, errOverflow
	}
	return Int(int64(n)), nil
}

// ceilDiv returns a/b rounded up.
func ceilDiv(a, b uint64) uint64 {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}

func rangeIsEmpty(c *Call, args []Value) (Value, error) {
	n, err := rangeLenFn(c, args)
	if err == errOverflow {
		return Bool(false), nil
	}
	if err != nil {
		return Value{}, err
	}
	return Bool(n.AsInt() == 0), nil
}

// name(f): the name of the function a pointer points to ("" for a closure).
func fnName(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return String(args[0].AsFn().Name()), nil
}

func fnIsAnonymous(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Bool(args[0].AsFn().Name() == ""), nil
}

// contains(h, x): `x in h` for host values that are containers.
func hostContains(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	hc, ok := args[0].AsHost().(HostContainer)
	if !ok {
		return Value{}, ErrNoMatch
	}
	in, err := hc.Contains(args[1])
	return Bool(in), err
}
