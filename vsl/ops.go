package vsl

import (
	"fmt"
	"math"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// opError is a type error of an operator; the compiled code adds the position.
func opError(op syntax.Token, a, b Value) error {
	return fmt.Errorf("operator '%s' cannot be applied to %s and %s", op, a.TypeName(), b.TypeName())
}

var (
	errOverflow = fmt.Errorf("integer overflow")
	errDivZero  = fmt.Errorf("division by zero")
)

func addInt(a, b int64) (int64, bool) {
	r := a + b
	return r, (a^r)&(b^r) >= 0
}

func subInt(a, b int64) (int64, bool) {
	r := a - b
	return r, (a^b)&(a^r) >= 0
}

func mulInt(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	r := a * b
	if r/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		return 0, false
	}
	return r, true
}

func powInt(a, b int64) (int64, error) {
	if b < 0 {
		return 0, fmt.Errorf("integer raised to a negative power %d", b)
	}
	r := int64(1)
	for b > 0 {
		if b&1 == 1 {
			var ok bool
			if r, ok = mulInt(r, a); !ok {
				return 0, errOverflow
			}
		}
		b >>= 1
		if b > 0 {
			var ok bool
			if a, ok = mulInt(a, a); !ok {
				return 0, errOverflow
			}
		}
	}
	return r, nil
}

// intOp applies an arithmetic or bitwise operator to two integers.
func intOp(op syntax.Token, x, y int64) (Value, error) {
	switch op {
	case syntax.PLUS:
		if r, ok := addInt(x, y); ok {
			return Int(r), nil
		}
		return Value{}, errOverflow
	case syntax.MINUS:
		if r, ok := subInt(x, y); ok {
			return Int(r), nil
		}
		return Value{}, errOverflow
	case syntax.STAR:
		if r, ok := mulInt(x, y); ok {
			return Int(r), nil
		}
		return Value{}, errOverflow
	case syntax.SLASH:
		if y == 0 {
			return Value{}, errDivZero
		}
		if x == math.MinInt64 && y == -1 {
			return Value{}, errOverflow
		}
		return Int(x / y), nil
	case syntax.PERCENT:
		if y == 0 {
			return Value{}, errDivZero
		}
		if y == -1 {
			return Int(0), nil
		}
		return Int(x % y), nil
	case syntax.POW:
		r, err := powInt(x, y)
		return Int(r), err
	case syntax.SHL, syntax.SHR:
		if y < 0 || y >= 64 {
			return Value{}, fmt.Errorf("cannot shift by %d bits", y)
		}
		if op == syntax.SHL {
			r := x << uint(y)
			if r>>uint(y) != x {
				return Value{}, errOverflow
			}
			return Int(r), nil
		}
		return Int(x >> uint(y)), nil
	case syntax.AMP:
		return Int(x & y), nil
	case syntax.PIPE:
		return Int(x | y), nil
	case syntax.CARET:
		return Int(x ^ y), nil
	}
	return Value{}, opError(op, Int(x), Int(y))
}

func floatOp(op syntax.Token, x, y float64) (Value, bool) {
	switch op {
	case syntax.PLUS:
		return Float(x + y), true
	case syntax.MINUS:
		return Float(x - y), true
	case syntax.STAR:
		return Float(x * y), true
	case syntax.SLASH:
		return Float(x / y), true
	case syntax.PERCENT:
		return Float(math.Mod(x, y)), true
	case syntax.POW:
		return Float(math.Pow(x, y)), true
	}
	return Value{}, false
}

// binaryOp applies an operator other than && || ?? to two values. maxStr
// bounds the length of a string it builds (0: unlimited).
func binaryOp(op syntax.Token, a, b Value, maxStr int) (Value, error) {
	switch op {
	case syntax.EQ, syntax.IS:
		return Bool(Equal(a, b)), nil
	case syntax.NE, syntax.NOT:
		return Bool(!Equal(a, b)), nil
	case syntax.LT, syntax.LE, syntax.GT, syntax.GE:
		c, ok := Compare(a, b)
		if !ok {
			// Rhai: ordering values of different types is false.
			return Bool(false), nil
		}
		switch op {
		case syntax.LT:
			return Bool(c < 0), nil
		case syntax.LE:
			return Bool(c <= 0), nil
		case syntax.GT:
			return Bool(c > 0), nil
		}
		return Bool(c >= 0), nil
	case syntax.IN:
		in, err := contains(b, a)
		return Bool(in), err
	case syntax.NOTIN:
		in, err := contains(b, a)
		return Bool(!in), err
	}
	ak, bk := a.kind, b.kind
	switch {
	case ak == KindInt && bk == KindInt:
		return intOp(op, a.AsInt(), b.AsInt())
	case (ak == KindInt || ak == KindFloat) && (bk == KindInt || bk == KindFloat):
		if v, ok := floatOp(op, toFloat(a), toFloat(b)); ok {
			return v, nil
		}
	case ak == KindBool && bk == KindBool:
		x, y := a.AsBool(), b.AsBool()
		switch op {
		case syntax.AMP:
			return Bool(x && y), nil
		case syntax.PIPE:
			return Bool(x || y), nil
		case syntax.CARET:
			return Bool(x != y), nil
		}
	case op == syntax.PLUS && (ak == KindString || bk == KindString || (ak == KindChar && bk == KindChar)):
		if (ak == KindArray || ak == KindMap) && bk == KindString || (bk == KindArray || bk == KindMap) && ak == KindString {
			break
		}
		s := concatText(a) + concatText(b)
		if maxStr > 0 && len(s) > maxStr {
			return Value{}, fmt.Errorf("string length %d exceeds the limit of %d bytes", len(s), maxStr)
		}
		return String(s), nil
	case op == syntax.MINUS && ak == KindString && (bk == KindString || bk == KindChar):
		// Rhai: string - string/char removes every occurrence.
		return String(strings.ReplaceAll(a.AsString(), concatText(b), "")), nil
	case op == syntax.PLUS && ak == KindArray && bk == KindArray:
		x, y := a.AsArray().Elems, b.AsArray().Elems
		out := make([]Value, 0, len(x)+len(y))
		for _, e := range x {
			out = append(out, e.Clone())
		}
		for _, e := range y {
			out = append(out, e.Clone())
		}
		return NewArray(out), nil
	case op == syntax.PLUS && ak == KindMap && bk == KindMap:
		out := a.Clone()
		m := out.AsMap()
		for k, v := range b.AsMap().M {
			m.M[k] = v.Clone()
		}
		return out, nil
	}
	return Value{}, opError(op, a, b)
}

// concatText is the text a value contributes to string concatenation:
// () contributes nothing (Rhai).
func concatText(v Value) string {
	if v.kind == KindUnit {
		return ""
	}
	return ToString(v)
}

// contains answers `x in c`.
func contains(c, x Value) (bool, error) {
	switch c.kind {
	case KindString:
		s := c.AsString()
		switch x.kind {
		case KindString:
			return strings.Contains(s, x.AsString()), nil
		case KindChar:
			return strings.ContainsRune(s, x.AsChar()), nil
		}
	case KindArray:
		elems := c.AsArray().Elems
		if x.kind == KindString {
			// The common rule shape, a string in a list of strings: compare
			// lengths inline and the bytes only when they match. Elements
			// of other kinds (chars, objects) take the general path.
			xs := x.AsString()
			for _, e := range elems {
				if e.kind == KindString {
					if int(e.n) == len(xs) && e.AsString() == xs {
						return true, nil
					}
				} else if Equal(x, e) {
					return true, nil
				}
			}
			return false, nil
		}
		for _, e := range elems {
			if Equal(x, e) {
				return true, nil
			}
		}
		return false, nil
	case KindMap:
		switch x.kind {
		case KindString:
			_, ok := c.AsMap().M[x.AsString()]
			return ok, nil
		case KindChar:
			_, ok := c.AsMap().M[string(x.AsChar())]
			return ok, nil
		}
	case KindRange:
		switch x.kind {
		case KindInt:
			return c.AsRange().Contains(x.AsInt()), nil
		case KindFloat:
			return false, nil
		}
	case KindHost:
		if hc, ok := c.AsHost().(HostContainer); ok {
			return hc.Contains(x)
		}
	}
	return false, fmt.Errorf("operator 'in' cannot be applied to %s and %s", x.TypeName(), c.TypeName())
}

// unaryOp applies a prefix operator.
func unaryOp(op syntax.Token, v Value) (Value, error) {
	switch op {
	case syntax.MINUS:
		switch v.kind {
		case KindInt:
			if v.AsInt() == math.MinInt64 {
				return Value{}, errOverflow
			}
			return Int(-v.AsInt()), nil
		case KindFloat:
			return Float(-v.AsFloat()), nil
		}
	case syntax.PLUS:
		if v.kind == KindInt || v.kind == KindFloat {
			return v, nil
		}
	case syntax.BANG:
		if v.kind == KindBool {
			return Bool(!v.AsBool()), nil
		}
	}
	return Value{}, fmt.Errorf("operator '%s' cannot be applied to %s", op, v.TypeName())
}
