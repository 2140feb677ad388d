package vsl

import (
	"fmt"
	"slices"
)

// Arrays have value semantics: the functions that change an array (push,
// insert, sort, ...) change the variable they are called on; the others
// return new arrays and leave it alone. Elements handed out (get, find,
// extract, ...) are copies, so changing them never changes the array.
//
// Functions taking a callback pass it the element and, when the callback
// declares one more parameter, the element's index: |x| or |x, i|.

func addArrayLib(l *libBuilder) {
	A := KindArray

	l.pure("len", arrLen, A)
	l.pure("is_empty", arrIsEmpty, A)
	l.pure("get", arrGet, A)
	l.pure("extract", arrExtract, A)

	l.pure("contains", arrContains, A)
	l.calls("index_of", arrIndexOf, A)
	l.calls("filter", arrFilter, A)
	l.calls("map", arrMap, A)
	l.calls("reduce", arrReduce, A)
	l.calls("reduce_rev", arrReduceRev, A)
	l.calls("some", arrSome, A)
	l.calls("all", arrAll, A)
	l.calls("find", arrFind, A)
	l.calls("find_map", arrFindMap, A)
	l.calls("zip", arrZip, A)

	l.inPlace("push", arrPush, A)
	l.inPlace("append", arrAppend, A)
	l.inPlace("insert", arrInsert, A)
	l.inPlace("set", arrSet, A)
	l.inPlace("pop", arrPop, A)
	l.inPlace("shift", arrShift, A)
	l.inPlace("remove", arrRemove, A)
	l.inPlace("clear", arrClear, A)
	l.inPlace("truncate", arrTruncate, A)
	l.inPlace("chop", arrChop, A)
	l.inPlace("pad", arrPad, A)
	l.inPlace("reverse", arrReverse, A)
	l.inPlace("split", arrSplit, A)
	l.inPlace("drain", arrDrain, A)
	l.inPlace("retain", arrRetain, A)
	l.inPlace("splice", arrSplice, A)
	l.inPlace("dedup", arrDedup, A)
	l.inPlace("sort", arrSort, A)
}

// cloned returns a copy of vs whose arrays and maps are copied deeply.
func cloned(vs []Value) []Value {
	out := make([]Value, len(vs))
	for i, v := range vs {
		out[i] = v.Clone()
	}
	return out
}

func arrLen(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Int(int64(len(args[0].AsArray().Elems))), nil
}

func arrIsEmpty(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Bool(len(args[0].AsArray().Elems) == 0), nil
}

// get(a, pos): a copy of the element at a position (negative counts from
// the end), or () when there is none.
func arrGet(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	pos, ok := intArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	elems := args[0].AsArray().Elems
	i, ok := elemIndex(pos, len(elems))
	if !ok {
		return Value{}, nil
	}
	return elems[i].Clone(), nil
}

// set(a, pos, v): replace the element at a position; nothing happens when
// there is none.
func arrSet(_ *Call, args []Value) (Value, error) {
	if len(args) != 3 {
		return Value{}, ErrNoMatch
	}
	pos, ok := intArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	elems := args[0].AsArray().Elems
	if i, ok := elemIndex(pos, len(elems)); ok {
		elems[i] = args[2].Clone()
	}
	return Value{}, nil
}

// rangeArgs resolves the (start[, len]) or (range) arguments of extract,
// drain, retain and splice against n elements; def is the length when only
// a start is given.
func rangeArgs(n int, args []Value, def int64) (off, count int, ok bool) {
	switch len(args) {
	case 1:
		if r := args[0].AsRange(); r != nil {
			start, length := rangeLen(r)
			off, count = offsetLen(n, start, length)
			return off, count, true
		}
		start, ok := intArg(args[0])
		if !ok {
			return 0, 0, false
		}
		off, count = offsetLen(n, start, def)
		return off, count, true
	case 2:
		start, ok1 := intArg(args[0])
		length, ok2 := intArg(args[1])
		if !ok1 || !ok2 {
			return 0, 0, false
		}
		off, count = offsetLen(n, start, length)
		return off, count, true
	}
	return 0, 0, false
}

// extract(a, start[, len]) / extract(a, range): a copy of part of the array.
func arrExtract(_ *Call, args []Value) (Value, error) {
	elems := args[0].AsArray().Elems
	off, n, ok := rangeArgs(len(elems), args[1:], int64(len(elems)))
	if !ok {
		return Value{}, ErrNoMatch
	}
	return NewArray(cloned(elems[off : off+n])), nil
}

// contains(a, x): some element equals x (as == compares).
func arrContains(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	for _, e := range args[0].AsArray().Elems {
		if Equal(args[1], e) {
			return Bool(true), nil
		}
	}
	return Bool(false), nil
}

// startArg resolves the optional start position of index_of and find:
// ok=false when it is not an integer, skip=true when it lies past the end.
func startArg(args []Value, i, n int) (from int, skip, ok bool) {
	if len(args) <= i {
		return 0, false, true
	}
	start, ok := intArg(args[i])
	if !ok {
		return 0, false, false
	}
	if start >= int64(n) && start > 0 {
		return n, true, true
	}
	return absPos(start, n), false, true
}

// index_of(a, x[, start]): the position of the first element equal to x;
// index_of(a, fn[, start]): of the first for which fn returns true; -1 if
// none.
func arrIndexOf(c *Call, args []Value) (Value, error) {
	if len(args) < 2 || len(args) > 3 {
		return Value{}, ErrNoMatch
	}
	elems := args[0].AsArray().Elems
	from, skip, ok := startArg(args, 2, len(elems))
	if !ok {
		return Value{}, ErrNoMatch
	}
	if skip {
		return Int(-1), nil
	}
	if fnArg(args[1]) {
		ec := newElemCaller(c, args[1], 1)
		for i := from; i < len(elems); i++ {
			hit, err := ec.test(elems[i], i)
			if err != nil {
				return Value{}, err
			}
			if hit {
				return Int(int64(i)), nil
			}
		}
		return Int(-1), nil
	}
	for i := from; i < len(elems); i++ {
		if Equal(args[1], elems[i]) {
			return Int(int64(i)), nil
		}
	}
	return Int(-1), nil
}

// find(a, fn[, start]): a copy of the first element for which fn returns
// true, or ().
func arrFind(c *Call, args []Value) (Value, error) {
	if len(args) < 2 || len(args) > 3 || !fnArg(args[1]) {
		return Value{}, ErrNoMatch
	}
	elems := args[0].AsArray().Elems
	from, skip, ok := startArg(args, 2, len(elems))
	if !ok {
		return Value{}, ErrNoMatch
	}
	if skip {
		return Value{}, nil
	}
	ec := newElemCaller(c, args[1], 1)
	for i := from; i < len(elems); i++ {
		hit, err := ec.test(elems[i], i)
		if err != nil {
			return Value{}, err
		}
		if hit {
			return elems[i].Clone(), nil
		}
	}
	return Value{}, nil
}

// find_map(a, fn[, start]): the first result of fn that is not ().
func arrFindMap(c *Call, args []Value) (Value, error) {
	if len(args) < 2 || len(args) > 3 || !fnArg(args[1]) {
		return Value{}, ErrNoMatch
	}
	elems := args[0].AsArray().Elems
	from, skip, ok := startArg(args, 2, len(elems))
	if !ok {
		return Value{}, ErrNoMatch
	}
	if skip {
		return Value{}, nil
	}
	ec := newElemCaller(c, args[1], 1)
	for i := from; i < len(elems); i++ {
		v, err := ec.call1(elems[i], i)
		if err != nil {
			return Value{}, err
		}
		if v.kind != KindUnit {
			return v.Clone(), nil
		}
	}
	return Value{}, nil
}

// filter(a, fn): the elements for which fn returns true.
func arrFilter(c *Call, args []Value) (Value, error) {
	if len(args) != 2 || !fnArg(args[1]) {
		return Value{}, ErrNoMatch
	}
	elems := args[0].AsArray().Elems
	ec := newElemCaller(c, args[1], 1)
	var out []Value
	for i, e := range elems {
		keep, err := ec.test(e, i)
		if err != nil {
			return Value{}, err
		}
		if keep {
			out = append(out, e.Clone())
		}
	}
	return NewArray(out), nil
}

// map(a, fn): the results of fn on every element.
func arrMap(c *Call, args []Value) (Value, error) {
	if len(args) != 2 || !fnArg(args[1]) {
		return Value{}, ErrNoMatch
	}
	elems := args[0].AsArray().Elems
	ec := newElemCaller(c, args[1], 1)
	out := make([]Value, len(elems))
	for i, e := range elems {
		v, err := ec.call1(e, i)
		if err != nil {
			return Value{}, err
		}
		out[i] = v.Clone()
	}
	return NewArray(out), nil
}

// reduce(a, fn[, initial]): fold the elements with fn(acc, x[, i]); the
// accumulator starts as initial, or () when there is none.
func arrReduce(c *Call, args []Value) (Value, error) {
	return reduce(c, args, false)
}

// reduce_rev(a, fn[, initial]): reduce from the last element.
func arrReduceRev(c *Call, args []Value) (Value, error) {
	return reduce(c, args, true)
}

func reduce(c *Call, args []Value, rev bool) (Value, error) {
	if len(args) < 2 || len(args) > 3 || !fnArg(args[1]) {
		return Value{}, ErrNoMatch
	}
	elems := args[0].AsArray().Elems
	ec := newElemCaller(c, args[1], 2)
	var acc Value
	if len(args) == 3 {
		acc = args[2]
	}
	for k := range elems {
		i := k
		if rev {
			i = len(elems) - 1 - k
		}
		v, err := ec.call2(acc, elems[i], i)
		if err != nil {
			return Value{}, err
		}
		acc = v
	}
	return acc.Clone(), nil
}

// some(a, fn): fn returns true for at least one element.
func arrSome(c *Call, args []Value) (Value, error) {
	if len(args) != 2 || !fnArg(args[1]) {
		return Value{}, ErrNoMatch
	}
	ec := newElemCaller(c, args[1], 1)
	for i, e := range args[0].AsArray().Elems {
		hit, err := ec.test(e, i)
		if err != nil || hit {
			return Bool(hit), err
		}
	}
	return Bool(false), nil
}

// all(a, fn): fn returns true for every element.
func arrAll(c *Call, args []Value) (Value, error) {
	if len(args) != 2 || !fnArg(args[1]) {
		return Value{}, ErrNoMatch
	}
	ec := newElemCaller(c, args[1], 1)
	for i, e := range args[0].AsArray().Elems {
		hit, err := ec.test(e, i)
		if err != nil || !hit {
			return Bool(false), err
		}
	}
	return Bool(true), nil
}

// zip(a, b, fn): the results of fn(x, y[, i]) on the elements of a and b
// taken in pairs, as far as the shorter array goes.
func arrZip(c *Call, args []Value) (Value, error) {
	if len(args) != 3 || args[1].kind != KindArray || !fnArg(args[2]) {
		return Value{}, ErrNoMatch
	}
	x, y := args[0].AsArray().Elems, args[1].AsArray().Elems
	n := min(len(x), len(y))
	ec := newElemCaller(c, args[2], 2)
	out := make([]Value, n)
	for i := range n {
		v, err := ec.call2(x[i], y[i], i)
		if err != nil {
			return Value{}, err
		}
		out[i] = v.Clone()
	}
	return NewArray(out), nil
}

// growth checks that adding n elements to a keeps it within the limits,
// before anything is changed.
func growth(c *Call, a *Array, n int) error {
	return c.CheckArray(len(a.Elems) + n)
}

// push(a, x): append one element.
func arrPush(c *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	a := args[0].AsArray()
	if err := growth(c, a, 1); err != nil {
		return Value{}, err
	}
	a.Elems = append(a.Elems, args[1].Clone())
	return Value{}, nil
}

// append(a, b): append the elements of another array.
func arrAppend(c *Call, args []Value) (Value, error) {
	if len(args) != 2 || args[1].kind != KindArray {
		return Value{}, ErrNoMatch
	}
	a := args[0].AsArray()
	add := args[1].AsArray().Elems
	if err := growth(c, a, len(add)); err != nil {
		return Value{}, err
	}
	a.Elems = append(a.Elems, cloned(add)...)
	return Value{}, nil
}

// insert(a, pos, x): insert before a position (negative counts from the
// end; past the end appends).
func arrInsert(c *Call, args []Value) (Value, error) {
	if len(args) != 3 {
		return Value{}, ErrNoMatch
	}
	pos, ok := intArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	a := args[0].AsArray()
	if err := growth(c, a, 1); err != nil {
		return Value{}, err
	}
	a.Elems = slices.Insert(a.Elems, absPos(pos, len(a.Elems)), args[2].Clone())
	return Value{}, nil
}

// pop(a): remove the last element and return it (() when empty).
func arrPop(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	a := args[0].AsArray()
	if len(a.Elems) == 0 {
		return Value{}, nil
	}
	last := a.Elems[len(a.Elems)-1]
	a.Elems[len(a.Elems)-1] = Value{}
	a.Elems = a.Elems[:len(a.Elems)-1]
	return last, nil
}

// shift(a): remove the first element and return it (() when empty).
func arrShift(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	a := args[0].AsArray()
	if len(a.Elems) == 0 {
		return Value{}, nil
	}
	first := a.Elems[0]
	a.Elems = slices.Delete(a.Elems, 0, 1)
	return first, nil
}

// remove(a, pos): remove the element at a position and return it (() when
// there is none).
func arrRemove(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	pos, ok := intArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	a := args[0].AsArray()
	i, ok := elemIndex(pos, len(a.Elems))
	if !ok {
		return Value{}, nil
	}
	v := a.Elems[i]
	a.Elems = slices.Delete(a.Elems, i, i+1)
	return v, nil
}

func arrClear(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	a := args[0].AsArray()
	clear(a.Elems)
	a.Elems = a.Elems[:0]
	return Value{}, nil
}

// truncate(a, n): keep the first n elements.
func arrTruncate(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	n, ok := intArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	a := args[0].AsArray()
	if n < int64(len(a.Elems)) {
		keep := int(max(n, 0))
		clear(a.Elems[keep:])
		a.Elems = a.Elems[:keep]
	}
	return Value{}, nil
}

// chop(a, n): keep the last n elements.
func arrChop(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	n, ok := intArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	a := args[0].AsArray()
	if n < int64(len(a.Elems)) {
		a.Elems = slices.Delete(a.Elems, 0, len(a.Elems)-int(max(n, 0)))
	}
	return Value{}, nil
}

// pad(a, n, x): append copies of x until a has n elements.
func arrPad(c *Call, args []Value) (Value, error) {
	if len(args) != 3 {
		return Value{}, ErrNoMatch
	}
	n, ok := intArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	a := args[0].AsArray()
	if n <= int64(len(a.Elems)) {
		return Value{}, nil
	}
	if err := c.CheckArray(int(min(n, 1<<40))); err != nil {
		return Value{}, err
	}
	add := int(n) - len(a.Elems)
	// Each copy of an array or map is as large as the original: bound the
	// total, not just the number of elements.
	if w := weight(args[2]); w > 1 {
		if err := c.CheckArray(add * w); err != nil {
			return Value{}, fmt.Errorf("padding with %d copies of a value of %d elements: %w", add, w, err)
		}
	}
	for range add {
		a.Elems = append(a.Elems, args[2].Clone())
	}
	return Value{}, nil
}

// weight counts the values in v, nested ones included (capped, it only
// guards against copying huge values many times).
func weight(v Value) int {
	const capped = 1 << 30
	switch v.kind {
	case KindArray:
		n := 1
		for _, e := range v.AsArray().Elems {
			if n += weight(e); n > capped {
				return capped
			}
		}
		return n
	case KindMap:
		n := 1
		for _, e := range v.AsMap().M {
			if n += weight(e); n > capped {
				return capped
			}
		}
		return n
	}
	return 1
}

func arrReverse(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	slices.Reverse(args[0].AsArray().Elems)
	return Value{}, nil
}

// split(a, pos): cut the array at a position (negative counts from the
// end): a keeps the head, the tail is returned.
func arrSplit(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	pos, ok := intArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	a := args[0].AsArray()
	i := absPos(pos, len(a.Elems))
	tail := slices.Clone(a.Elems[i:])
	clear(a.Elems[i:])
	a.Elems = a.Elems[:i]
	return NewArray(tail), nil
}

// drain(a, fn): remove the elements for which fn returns true and return
// them; drain(a, start, len) / drain(a, range): remove a part and return it.
func arrDrain(c *Call, args []Value) (Value, error) {
	if len(args) == 2 && fnArg(args[1]) {
		return partition(c, args, true)
	}
	a := args[0].AsArray()
	off, n, ok := rangeArgs(len(a.Elems), args[1:], 0)
	if !ok || len(args) == 2 && args[1].kind != KindRange {
		return Value{}, ErrNoMatch
	}
	out := slices.Clone(a.Elems[off : off+n])
	a.Elems = slices.Delete(a.Elems, off, off+n)
	return NewArray(out), nil
}

// retain(a, fn): keep the elements for which fn returns true and return
// the others; retain(a, start, len) / retain(a, range): keep a part and
// return the rest.
func arrRetain(c *Call, args []Value) (Value, error) {
	if len(args) == 2 && fnArg(args[1]) {
		return partition(c, args, false)
	}
	a := args[0].AsArray()
	off, n, ok := rangeArgs(len(a.Elems), args[1:], 0)
	if !ok || len(args) == 2 && args[1].kind != KindRange {
		return Value{}, ErrNoMatch
	}
	removed := make([]Value, 0, len(a.Elems)-n)
	removed = append(removed, a.Elems[:off]...)
	removed = append(removed, a.Elems[off+n:]...)
	kept := slices.Clone(a.Elems[off : off+n])
	a.Elems = kept
	return NewArray(removed), nil
}

// partition removes from a the elements for which the predicate says
// remove (drain: true, retain: false) and returns them. The array changes
// only when every call succeeded.
func partition(c *Call, args []Value, remove bool) (Value, error) {
	a := args[0].AsArray()
	elems := a.Elems
	ec := newElemCaller(c, args[1], 1)
	var kept, removed []Value
	for i, e := range elems {
		hit, err := ec.test(e, i)
		if err != nil {
			return Value{}, err
		}
		if hit == remove {
			removed = append(removed, e)
		} else {
			kept = append(kept, e)
		}
	}
	a.Elems = kept
	return NewArray(removed), nil
}

// splice(a, start, len, b) / splice(a, range, b): replace a part of the
// array by the elements of b.
func arrSplice(c *Call, args []Value) (Value, error) {
	if len(args) < 3 || len(args) > 4 {
		return Value{}, ErrNoMatch
	}
	with := args[len(args)-1]
	if with.kind != KindArray {
		return Value{}, ErrNoMatch
	}
	rest := args[1 : len(args)-1]
	if len(rest) == 1 && rest[0].kind != KindRange {
		return Value{}, ErrNoMatch
	}
	a := args[0].AsArray()
	off, n, ok := rangeArgs(len(a.Elems), rest, 0)
	if !ok {
		return Value{}, ErrNoMatch
	}
	add := with.AsArray().Elems
	if err := growth(c, a, len(add)-n); err != nil {
		return Value{}, err
	}
	a.Elems = slices.Replace(a.Elems, off, off+n, cloned(add)...)
	return Value{}, nil
}

// dedup(a[, fn]): remove the elements equal to the one kept before them
// (as == compares, or as fn(previous, x) says).
func arrDedup(c *Call, args []Value) (Value, error) {
	a := args[0].AsArray()
	switch len(args) {
	case 1:
		a.Elems = slices.CompactFunc(a.Elems, Equal)
		return Value{}, nil
	case 2:
		if !fnArg(args[1]) {
			return Value{}, ErrNoMatch
		}
		elems := a.Elems
		if len(elems) == 0 {
			return Value{}, nil
		}
		kept := []Value{elems[0]}
		for _, e := range elems[1:] {
			v, err := c.CallFn(args[1], kept[len(kept)-1], e)
			if err != nil {
				return Value{}, err
			}
			same, err := predicateResult(v)
			if err != nil {
				return Value{}, err
			}
			if !same {
				kept = append(kept, e)
			}
		}
		a.Elems = kept
		return Value{}, nil
	}
	return Value{}, ErrNoMatch
}

// sort(a): sort numbers, strings and chars, or bools, in their natural
// order; sort(a, fn): sort by a comparator returning an integer < 0, 0 or
// > 0. The sort is stable.
func arrSort(c *Call, args []Value) (Value, error) {
	a := args[0].AsArray()
	switch len(args) {
	case 1:
		if err := sortable(a.Elems); err != nil {
			return Value{}, err
		}
		slices.SortStableFunc(a.Elems, naturalCompare)
		return Value{}, nil
	case 2:
		if !fnArg(args[1]) {
			return Value{}, ErrNoMatch
		}
		elems := slices.Clone(a.Elems)
		var failed error
		slices.SortStableFunc(elems, func(x, y Value) int {
			if failed != nil {
				return 0
			}
			v, err := c.CallFn(args[1], x, y)
			if err != nil {
				failed = err
				return 0
			}
			if v.kind != KindInt {
				failed = fmt.Errorf("the comparator must return an i64 (< 0, 0 or > 0), not %s", v.TypeName())
				return 0
			}
			return cmp3(v.AsInt() < 0, v.AsInt() > 0)
		})
		if failed != nil {
			return Value{}, failed
		}
		a.Elems = elems
		return Value{}, nil
	}
	return Value{}, ErrNoMatch
}

// sortClass groups the kinds that sort() orders among themselves.
func sortClass(k Kind) int {
	switch k {
	case KindInt, KindFloat:
		return 1
	case KindString, KindChar:
		return 2
	case KindBool:
		return 3
	case KindUnit:
		return 4
	}
	return 0
}

// sortable checks that sort() without a comparator can order elems.
func sortable(elems []Value) error {
	if len(elems) == 0 {
		return nil
	}
	first := elems[0]
	class := sortClass(first.kind)
	if class == 0 {
		return fmt.Errorf("cannot sort values of type %s without a comparator function", first.TypeName())
	}
	for _, e := range elems[1:] {
		if sortClass(e.kind) != class {
			return fmt.Errorf("cannot sort an array mixing %s and %s without a comparator function", first.TypeName(), e.TypeName())
		}
	}
	return nil
}

// naturalCompare orders two values of one sort class; NaN sorts last.
func naturalCompare(a, b Value) int {
	if c, ok := Compare(a, b); ok {
		return c
	}
	if a.kind == KindUnit && b.kind == KindUnit {
		return 0
	}
	// Only NaN is left: NaN equals NaN and follows every number.
	an, bn := a.kind == KindFloat && a.AsFloat() != a.AsFloat(), b.kind == KindFloat && b.AsFloat() != b.AsFloat()
	return cmp3(!an && bn, an && !bn)
}
