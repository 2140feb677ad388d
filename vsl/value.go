// Package vsl is the vSL interpreter: values, the compiler that turns a
// parsed file into Go closures once at load time, the runtime that runs them
// under limits, and the Rhai standard library.
//
// The package knows nothing of mail, milter or SMTP. The mail layer extends
// it through host values (HostValue), host functions (Env.Define) and the
// hooks in Env for directives and v1 object/service declarations.
package vsl

import (
	"math"
	"strconv"
	"strings"
	"unsafe"
)

// Kind is the dynamic type of a Value.
type Kind uint8

// The kinds of value. Their Rhai names (type_of) are given by Kind.String.
const (
	KindUnit Kind = iota
	KindBool
	KindInt
	KindFloat
	KindChar
	KindString
	KindArray
	KindMap
	KindRange
	KindFn
	KindHost
	kindCell // internal: a captured variable's cell, never visible to scripts
)

// String returns the Rhai type name of the kind.
func (k Kind) String() string {
	switch k {
	case KindUnit:
		return "()"
	case KindBool:
		return "bool"
	case KindInt:
		return "i64"
	case KindFloat:
		return "f64"
	case KindChar:
		return "char"
	case KindString:
		return "string"
	case KindArray:
		return "array"
	case KindMap:
		return "map"
	case KindRange:
		return "range"
	case KindFn:
		return "Fn"
	case KindHost:
		return "host"
	}
	return "?"
}

// Value is a vSL value. It is a small struct passed by value: unit, bools,
// integers, floats and chars live in n; strings keep their data pointer in p
// and their length in n, so making a Value from a Go string never allocates.
// Arrays, maps, ranges, functions and host values point to heap objects.
//
// The zero Value is ().
type Value struct {
	p    unsafe.Pointer
	n    uint64
	kind Kind
}

// Array is the storage of an array value. Arrays have value semantics in
// vSL (as in Rhai): assigning one to a variable copies it.
type Array struct {
	Elems []Value
}

// Map is the storage of an object map, keyed by property name.
type Map struct {
	M map[string]Value
}

// Range is an integer range lo..hi (exclusive) or lo..=hi (inclusive).
type Range struct {
	Lo, Hi    int64
	Inclusive bool
}

// End returns the exclusive upper bound of the range.
func (r *Range) End() int64 {
	if r.Inclusive {
		if r.Hi == math.MaxInt64 {
			return r.Hi
		}
		return r.Hi + 1
	}
	return r.Hi
}

// Contains reports whether i lies in the range.
func (r *Range) Contains(i int64) bool {
	if r.Inclusive {
		return i >= r.Lo && i <= r.Hi
	}
	return i >= r.Lo && i < r.Hi
}

// HostValue is a value type provided by the embedding program (the mail
// layer adds addresses, IP addresses and ranges, regexes, ...). Host values
// are immutable once created: rules on several transactions share them.
type HostValue interface {
	// TypeName is the name type_of returns.
	TypeName() string
	// String is the text print and to_string show.
	String() string
}

// HostEqualer is implemented by host values that compare with other values
// under ==, !=, `is` and `not`. Equal is called with the host value on
// either side; ok=false means "not comparable", which compares unequal.
type HostEqualer interface {
	Equal(other Value) (eq bool, ok bool)
}

// HostContainer is implemented by host values that answer `x in h`.
type HostContainer interface {
	Contains(x Value) (bool, error)
}

// HostAttrs is implemented by host values with properties (`h.name`).
// ok=false means the value has no such property.
type HostAttrs interface {
	Attr(name string) (v Value, ok bool, err error)
}

// HostIterable is implemented by host values usable in `for x in h`.
type HostIterable interface {
	Elems() []Value
}

type hostBox struct{ h HostValue }

// Unit returns ().
func Unit() Value { return Value{} }

// Bool returns a bool value.
func Bool(b bool) Value {
	if b {
		return Value{kind: KindBool, n: 1}
	}
	return Value{kind: KindBool}
}

// Int returns an i64 value.
func Int(i int64) Value { return Value{kind: KindInt, n: uint64(i)} }

// Float returns an f64 value.
func Float(f float64) Value { return Value{kind: KindFloat, n: math.Float64bits(f)} }

// Char returns a char value.
func Char(r rune) Value { return Value{kind: KindChar, n: uint64(r)} }

// String returns a string value. It does not copy or allocate.
func String(s string) Value {
	return Value{kind: KindString, n: uint64(len(s)), p: unsafe.Pointer(unsafe.StringData(s))}
}

// NewArray returns an array value holding elems (not copied).
func NewArray(elems []Value) Value {
	return Value{kind: KindArray, p: unsafe.Pointer(&Array{Elems: elems})}
}

// NewMap returns a map value holding m (not copied); a nil m makes an empty map.
func NewMap(m map[string]Value) Value {
	if m == nil {
		m = make(map[string]Value)
	}
	return Value{kind: KindMap, p: unsafe.Pointer(&Map{M: m})}
}

// NewRange returns a range value.
func NewRange(lo, hi int64, inclusive bool) Value {
	return Value{kind: KindRange, p: unsafe.Pointer(&Range{Lo: lo, Hi: hi, Inclusive: inclusive})}
}

// Host wraps a host value.
func Host(h HostValue) Value {
	return Value{kind: KindHost, p: unsafe.Pointer(&hostBox{h: h})}
}

// Kind returns the value's kind.
func (v Value) Kind() Kind { return v.kind }

// IsUnit reports whether v is ().
func (v Value) IsUnit() bool { return v.kind == KindUnit }

// AsBool returns the bool of a KindBool value (false otherwise).
func (v Value) AsBool() bool { return v.n != 0 }

// AsInt returns the integer of a KindInt value.
func (v Value) AsInt() int64 { return int64(v.n) }

// AsFloat returns the float of a KindFloat value.
func (v Value) AsFloat() float64 { return math.Float64frombits(v.n) }

// AsChar returns the rune of a KindChar value.
func (v Value) AsChar() rune { return rune(v.n) }

// AsString returns the string of a KindString value ("" otherwise).
func (v Value) AsString() string {
	if v.kind != KindString || v.n == 0 {
		return ""
	}
	return unsafe.String((*byte)(v.p), int(v.n))
}

// AsArray returns the storage of a KindArray value (nil otherwise).
func (v Value) AsArray() *Array {
	if v.kind != KindArray {
		return nil
	}
	return (*Array)(v.p)
}

// AsMap returns the storage of a KindMap value (nil otherwise).
func (v Value) AsMap() *Map {
	if v.kind != KindMap {
		return nil
	}
	return (*Map)(v.p)
}

// AsRange returns the range of a KindRange value (nil otherwise).
func (v Value) AsRange() *Range {
	if v.kind != KindRange {
		return nil
	}
	return (*Range)(v.p)
}

// AsFn returns the function of a KindFn value (nil otherwise).
func (v Value) AsFn() *Func {
	if v.kind != KindFn {
		return nil
	}
	return (*Func)(v.p)
}

// AsHost returns the host value of a KindHost value (nil otherwise).
func (v Value) AsHost() HostValue {
	if v.kind != KindHost {
		return nil
	}
	return (*hostBox)(v.p).h
}

// TypeName returns the Rhai type name of the value, as type_of does: the
// kind's name, "range=" for an inclusive range, a host value's own name.
func (v Value) TypeName() string {
	switch v.kind {
	case KindHost:
		return v.AsHost().TypeName()
	case KindRange:
		if v.AsRange().Inclusive {
			return "range="
		}
	}
	return v.kind.String()
}

// Truth returns the value of a bool, and false, false for any other kind.
func (v Value) Truth() (b, ok bool) {
	if v.kind != KindBool {
		return false, false
	}
	return v.n != 0, true
}

// Clone returns a deep copy of arrays and maps (vSL's value semantics);
// other values are returned as they are.
func (v Value) Clone() Value {
	switch v.kind {
	case KindArray:
		a := v.AsArray()
		elems := make([]Value, len(a.Elems))
		for i, e := range a.Elems {
			elems[i] = e.Clone()
		}
		return NewArray(elems)
	case KindMap:
		m := v.AsMap()
		out := make(map[string]Value, len(m.M))
		for k, e := range m.M {
			out[k] = e.Clone()
		}
		return NewMap(out)
	}
	return v
}

// Equal reports whether a == b under vSL's rules: numbers compare by value
// across i64 and f64, strings and chars compare as text (a one-char string
// equals that char), arrays and maps compare element-wise, host values
// decide through HostEqualer, and values of unrelated types are unequal.
func Equal(a, b Value) bool {
	if a.kind == b.kind {
		switch a.kind {
		case KindUnit:
			return true
		case KindBool, KindInt, KindChar:
			return a.n == b.n
		case KindFloat:
			return a.AsFloat() == b.AsFloat()
		case KindString:
			return a.AsString() == b.AsString()
		case KindArray:
			x, y := a.AsArray().Elems, b.AsArray().Elems
			if len(x) != len(y) {
				return false
			}
			for i := range x {
				if !Equal(x[i], y[i]) {
					return false
				}
			}
			return true
		case KindMap:
			x, y := a.AsMap().M, b.AsMap().M
			if len(x) != len(y) {
				return false
			}
			for k, xv := range x {
				yv, ok := y[k]
				if !ok || !Equal(xv, yv) {
					return false
				}
			}
			return true
		case KindRange:
			return *a.AsRange() == *b.AsRange()
		case KindFn:
			return a.p == b.p
		}
	}
	if a.kind == KindHost {
		if e, ok := a.AsHost().(HostEqualer); ok {
			if eq, ok := e.Equal(b); ok {
				return eq
			}
		}
		if b.kind == KindHost && a.kind == b.kind {
			return a.p == b.p
		}
		return false
	}
	if b.kind == KindHost {
		if e, ok := b.AsHost().(HostEqualer); ok {
			if eq, ok := e.Equal(a); ok {
				return eq
			}
		}
		return false
	}
	switch {
	case a.kind == KindInt && b.kind == KindFloat:
		return float64(a.AsInt()) == b.AsFloat()
	case a.kind == KindFloat && b.kind == KindInt:
		return a.AsFloat() == float64(b.AsInt())
	case a.kind == KindChar && b.kind == KindString:
		return charEqualsString(a.AsChar(), b.AsString())
	case a.kind == KindString && b.kind == KindChar:
		return charEqualsString(b.AsChar(), a.AsString())
	}
	return false
}

func charEqualsString(c rune, s string) bool {
	if len(s) == 0 || len(s) > 4 {
		return false
	}
	for i, r := range s {
		return i == 0 && r == c && len(string(r)) == len(s)
	}
	return false
}

// Compare orders a and b: -1, 0 or +1, and ok=false when the two values are
// not ordered (different, non-numeric kinds). Numbers compare across i64 and
// f64; strings and chars compare by code point.
func Compare(a, b Value) (int, bool) {
	switch {
	case a.kind == KindInt && b.kind == KindInt:
		x, y := a.AsInt(), b.AsInt()
		return cmp3(x < y, x > y), true
	case (a.kind == KindInt || a.kind == KindFloat) && (b.kind == KindInt || b.kind == KindFloat):
		x, y := toFloat(a), toFloat(b)
		if math.IsNaN(x) || math.IsNaN(y) {
			return 0, false
		}
		return cmp3(x < y, x > y), true
	case a.kind == KindString && b.kind == KindString:
		return strings.Compare(a.AsString(), b.AsString()), true
	case a.kind == KindChar && b.kind == KindChar:
		x, y := a.AsChar(), b.AsChar()
		return cmp3(x < y, x > y), true
	case a.kind == KindChar && b.kind == KindString:
		return strings.Compare(string(a.AsChar()), b.AsString()), true
	case a.kind == KindString && b.kind == KindChar:
		return strings.Compare(a.AsString(), string(b.AsChar())), true
	case a.kind == KindBool && b.kind == KindBool:
		return cmp3(a.n < b.n, a.n > b.n), true
	}
	return 0, false
}

func cmp3(less, greater bool) int {
	if less {
		return -1
	}
	if greater {
		return 1
	}
	return 0
}

func toFloat(v Value) float64 {
	if v.kind == KindInt {
		return float64(v.AsInt())
	}
	return v.AsFloat()
}

// ToString renders v as print and to_string do: strings and chars as their
// text, everything else as Debug does.
func ToString(v Value) string {
	switch v.kind {
	case KindString:
		return v.AsString()
	case KindChar:
		return string(v.AsChar())
	}
	var b strings.Builder
	writeDebug(&b, v)
	return b.String()
}

// Debug renders v as debug does: strings quoted, chars in single quotes,
// arrays as [a, b], maps as #{"k": v} with sorted keys.
func Debug(v Value) string {
	var b strings.Builder
	writeDebug(&b, v)
	return b.String()
}

func writeDebug(b *strings.Builder, v Value) {
	switch v.kind {
	case KindUnit:
		b.WriteString("()")
	case KindBool:
		b.WriteString(strconv.FormatBool(v.AsBool()))
	case KindInt:
		b.WriteString(strconv.FormatInt(v.AsInt(), 10))
	case KindFloat:
		b.WriteString(FormatFloat(v.AsFloat()))
	case KindChar:
		b.WriteString(strconv.QuoteRune(v.AsChar()))
	case KindString:
		b.WriteString(strconv.Quote(v.AsString()))
	case KindArray:
		b.WriteByte('[')
		for i, e := range v.AsArray().Elems {
			if i > 0 {
				b.WriteString(", ")
			}
			writeDebug(b, e)
		}
		b.WriteByte(']')
	case KindMap:
		m := v.AsMap()
		b.WriteString("#{")
		for i, k := range SortedKeys(m) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(k))
			b.WriteString(": ")
			writeDebug(b, m.M[k])
		}
		b.WriteByte('}')
	case KindRange:
		r := v.AsRange()
		b.WriteString(strconv.FormatInt(r.Lo, 10))
		if r.Inclusive {
			b.WriteString("..=")
		} else {
			b.WriteString("..")
		}
		b.WriteString(strconv.FormatInt(r.Hi, 10))
	case KindFn:
		b.WriteString(v.AsFn().String())
	case KindHost:
		b.WriteString(v.AsHost().String())
	default:
		b.WriteString("?")
	}
}

// FormatFloat renders a float as Rhai does: always with a fractional part
// or an exponent, so 1.0 prints as "1.0".
func FormatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "NaN"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}

// SortedKeys returns the keys of m in ascending order (Rhai's maps are
// ordered by key).
func SortedKeys(m *Map) []string {
	keys := make([]string, 0, len(m.M))
	for k := range m.M {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}
