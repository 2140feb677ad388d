package vsl

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Numbers are i64 and f64. Integer arithmetic that overflows is an error,
// as with the operators. The floating-point functions (sqrt, floor, ...)
// also accept an integer, which they convert first.

func addMathLib(l *libBuilder) {
	I, F, S, C := KindInt, KindFloat, KindString, KindChar

	l.pure("abs", numAbs, I, F)
	l.pure("sign", numSign, I, F)
	l.pure("is_zero", numIsZero, I, F)
	l.pure("is_odd", intIsOdd, I)
	l.pure("is_even", intIsEven, I)
	l.pure("min", minMax(false), I, F, S, C)
	l.pure("max", minMax(true), I, F, S, C)

	floatFn := func(name string, f func(float64) float64) {
		l.pure(name, func(_ *Call, args []Value) (Value, error) {
			x, ok := numArg(args[0])
			if len(args) != 1 || !ok {
				return Value{}, ErrNoMatch
			}
			return Float(f(x)), nil
		}, I, F)
	}
	floatFn("floor", math.Floor)
	floatFn("ceiling", math.Ceil)
	floatFn("round", math.Round)
	floatFn("int", math.Trunc)
	floatFn("fraction", func(x float64) float64 { return x - math.Trunc(x) })
	floatFn("sqrt", math.Sqrt)
	floatFn("exp", math.Exp)
	floatFn("ln", math.Log)
	floatFn("sin", math.Sin)
	floatFn("cos", math.Cos)
	floatFn("tan", math.Tan)
	floatFn("sinh", math.Sinh)
	floatFn("cosh", math.Cosh)
	floatFn("tanh", math.Tanh)
	floatFn("asin", math.Asin)
	floatFn("acos", math.Acos)
	floatFn("asinh", math.Asinh)
	floatFn("acosh", math.Acosh)
	floatFn("atanh", math.Atanh)
	floatFn("to_degrees", func(x float64) float64 { return x * 180 / math.Pi })
	floatFn("to_radians", func(x float64) float64 { return x * math.Pi / 180 })

	floatFn2 := func(name string, f1 func(float64) float64, f2 func(x, y float64) float64) {
		l.pure(name, func(_ *Call, args []Value) (Value, error) {
			x, ok := numArg(args[0])
			if !ok {
				return Value{}, ErrNoMatch
			}
			switch len(args) {
			case 1:
				if f1 != nil {
					return Float(f1(x)), nil
				}
			case 2:
				if y, ok := numArg(args[1]); ok {
					return Float(f2(x, y)), nil
				}
			}
			return Value{}, ErrNoMatch
		}, I, F)
	}
	floatFn2("log", math.Log10, func(x, base float64) float64 { return math.Log(x) / math.Log(base) })
	floatFn2("atan", math.Atan, math.Atan2)
	floatFn2("hypot", nil, math.Hypot)

	floatTest := func(name string, f func(float64) bool) {
		l.pure(name, func(_ *Call, args []Value) (Value, error) {
			x, ok := numArg(args[0])
			if len(args) != 1 || !ok {
				return Value{}, ErrNoMatch
			}
			return Bool(f(x)), nil
		}, I, F)
	}
	floatTest("is_nan", math.IsNaN)
	floatTest("is_finite", func(x float64) bool { return !math.IsInf(x, 0) && !math.IsNaN(x) })
	floatTest("is_infinite", func(x float64) bool { return math.IsInf(x, 0) })

	l.pure("to_int", toInt, I, F, C)
	l.pure("to_float", toFloatFn, I, F)
	l.pure("to_char", toChar, I, C)
	l.pure("parse_int", parseInt, S)
	l.pure("parse_float", parseFloat, S)
	l.pure("to_hex", formatInt(16), I)
	l.pure("to_octal", formatInt(8), I)
	l.pure("to_binary", formatInt(2), I)

	l.constant("PI", Float(math.Pi))
	l.constant("E", Float(math.E))
}

func numAbs(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	if x := args[0]; x.kind == KindFloat {
		return Float(math.Abs(x.AsFloat())), nil
	}
	i := args[0].AsInt()
	if i == math.MinInt64 {
		return Value{}, errOverflow
	}
	if i < 0 {
		i = -i
	}
	return Int(i), nil
}

// sign(x): -1, 0 or 1 as an i64.
func numSign(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	if x := args[0]; x.kind == KindFloat {
		f := x.AsFloat()
		if math.IsNaN(f) {
			return Value{}, fmt.Errorf("NaN has no sign")
		}
		return Int(int64(cmp3(f < 0, f > 0))), nil
	}
	i := args[0].AsInt()
	return Int(int64(cmp3(i < 0, i > 0))), nil
}

func numIsZero(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	x, _ := numArg(args[0])
	return Bool(x == 0), nil
}

func intIsOdd(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Bool(args[0].AsInt()&1 != 0), nil
}

func intIsEven(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Bool(args[0].AsInt()&1 == 0), nil
}

// minMax returns min or max: of two integers an integer, of two numbers
// otherwise a float, of two strings or chars the first or last in order.
func minMax(isMax bool) func(c *Call, args []Value) (Value, error) {
	return func(_ *Call, args []Value) (Value, error) {
		if len(args) != 2 {
			return Value{}, ErrNoMatch
		}
		a, b := args[0], args[1]
		if a.kind == KindInt && b.kind == KindInt {
			if (a.AsInt() < b.AsInt()) == isMax {
				return b, nil
			}
			return a, nil
		}
		if x, ok := numArg(a); ok {
			y, ok := numArg(b)
			if !ok {
				return Value{}, ErrNoMatch
			}
			if isMax {
				return Float(math.Max(x, y)), nil
			}
			return Float(math.Min(x, y)), nil
		}
		if sortClass(a.kind) != sortClass(b.kind) {
			return Value{}, ErrNoMatch
		}
		c, _ := Compare(a, b)
		if (c < 0) == isMax {
			return b, nil
		}
		return a, nil
	}
}

// to_int(x): an integer from an i64, an f64 (truncated toward zero) or a
// char (its code point).
func toInt(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	switch x := args[0]; x.kind {
	case KindInt:
		return x, nil
	case KindChar:
		return Int(int64(x.AsChar())), nil
	}
	f := args[0].AsFloat()
	if math.IsNaN(f) || f >= 9223372036854775808.0 || f < -9223372036854775808.0 {
		return Value{}, fmt.Errorf("%s does not fit in an i64", FormatFloat(f))
	}
	return Int(int64(f)), nil
}

func toFloatFn(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	f, _ := numArg(args[0])
	return Float(f), nil
}

// to_char(i): the character of a Unicode code point.
func toChar(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	if args[0].kind == KindChar {
		return args[0], nil
	}
	i := args[0].AsInt()
	if i < 0 || i > utf8.MaxRune || !utf8.ValidRune(rune(i)) {
		return Value{}, fmt.Errorf("%d is not a valid Unicode code point", i)
	}
	return Char(rune(i)), nil
}

// parse_int(s[, radix]): an integer from text in base 10 or radix (2 to
// 36), surrounding whitespace ignored.
func parseInt(_ *Call, args []Value) (Value, error) {
	radix := int64(10)
	switch len(args) {
	case 1:
	case 2:
		r, ok := intArg(args[1])
		if !ok {
			return Value{}, ErrNoMatch
		}
		if r < 2 || r > 36 {
			return Value{}, fmt.Errorf("radix %d is out of range: it must be from 2 to 36", r)
		}
		radix = r
	default:
		return Value{}, ErrNoMatch
	}
	s := strings.TrimSpace(args[0].AsString())
	i, err := strconv.ParseInt(s, int(radix), 64)
	if err != nil {
		base := ""
		if radix != 10 {
			base = fmt.Sprintf(" in base %d", radix)
		}
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return Value{}, fmt.Errorf("%s%s does not fit in an i64", strconv.Quote(clip(s)), base)
		}
		return Value{}, fmt.Errorf("%s is not an integer%s", strconv.Quote(clip(s)), base)
	}
	return Int(i), nil
}

// parse_float(s): a float from decimal text (with an optional exponent;
// "inf" and "NaN" too), surrounding whitespace ignored.
func parseFloat(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	s := strings.TrimSpace(args[0].AsString())
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !isRangeErr(err) || strings.ContainsAny(s, "xX_") {
		return Value{}, fmt.Errorf("%s is not a number", strconv.Quote(clip(s)))
	}
	return Float(f), nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// clip shortens text quoted in an error message.
func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	i := charOffset(s, 40)
	return s[:i] + "..."
}

// formatInt returns to_hex, to_octal or to_binary: the digits of an integer
// in that base, negative numbers in two's complement as Rhai shows them.
func formatInt(base int) func(c *Call, args []Value) (Value, error) {
	return func(_ *Call, args []Value) (Value, error) {
		if len(args) != 1 {
			return Value{}, ErrNoMatch
		}
		return String(strconv.FormatUint(uint64(args[0].AsInt()), base)), nil
	}
}
