package vsl

import (
	"fmt"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// constCode returns code producing v.
func constCode(v Value) code {
	return func(*frame) (Value, error) { return v, nil }
}

func literalValue(l *syntax.Literal) Value {
	switch x := l.Value.(type) {
	case int64:
		return Int(x)
	case float64:
		return Float(x)
	case string:
		return String(x)
	case rune:
		return Char(x)
	case bool:
		return Bool(x)
	}
	return Value{}
}

// isFresh reports whether e always produces a new value, so that binding it
// needs no copy (arrays and maps have value semantics).
func isFresh(e syntax.Expr) bool {
	switch e.(type) {
	case *syntax.Literal, *syntax.ArrayExpr, *syntax.MapExpr, *syntax.InterpString,
		*syntax.BinaryExpr, *syntax.UnaryExpr, *syntax.RangeExpr, *syntax.ClosureExpr:
		return true
	}
	return false
}

// valueExpr compiles e where its value is stored (a variable, an element,
// an argument): arrays and maps read from elsewhere are copied.
func (c *compiler) valueExpr(e syntax.Expr) code {
	x := c.expr(e)
	if isFresh(e) {
		return x
	}
	return func(fr *frame) (Value, error) {
		v, err := x(fr)
		if v.kind == KindArray || v.kind == KindMap {
			v = v.Clone()
		}
		return v, err
	}
}

func (c *compiler) expr(e syntax.Expr) code {
	switch e := e.(type) {
	case *syntax.Literal:
		return constCode(literalValue(e))
	case *syntax.IdentExpr:
		return c.ident(e)
	case *syntax.PathExpr:
		return c.path(e)
	case *syntax.ThisExpr:
		if !c.fn.method {
			c.errorf(e.Pos, "'this' is only available inside a function (called as a method)")
		}
		pos := e.Pos
		return func(fr *frame) (Value, error) {
			if fr.this == nil {
				return Value{}, fr.errorf(pos, "'this' is not bound: the function was not called as a method")
			}
			return *fr.this, nil
		}
	case *syntax.InterpString:
		return c.interp(e)
	case *syntax.ArrayExpr:
		return c.array(e)
	case *syntax.MapExpr:
		return c.mapLit(e)
	case *syntax.UnaryExpr:
		return c.unary(e)
	case *syntax.BinaryExpr:
		return c.binary(e)
	case *syntax.RangeExpr:
		return c.rangeExpr(e)
	case *syntax.CallExpr:
		return c.call(e)
	case *syntax.MethodCallExpr:
		return c.methodCall(e)
	case *syntax.DotExpr:
		return c.dot(e)
	case *syntax.IndexExpr:
		return c.index(e)
	case *syntax.ClosureExpr:
		return c.closure(e)
	case *syntax.BlockExpr:
		return c.block(e)
	case *syntax.IfExpr:
		return c.ifExpr(e)
	case *syntax.SwitchExpr:
		return c.switchExpr(e)
	case *syntax.WhileExpr:
		return c.whileExpr(e)
	case *syntax.LoopExpr:
		return c.loopExpr(e)
	case *syntax.DoExpr:
		return c.doExpr(e)
	case *syntax.ForExpr:
		return c.forExpr(e)
	case *syntax.TryExpr:
		return c.tryExpr(e)
	case *syntax.DirectiveExpr:
		return c.directive(e)
	}
	c.errorf(e.Position(), "unsupported expression %T", e)
	return constCode(Value{})
}

// ---- Names ----

func (c *compiler) ident(e *syntax.IdentExpr) code {
	a, ok := c.resolve(e.Name)
	if !ok {
		if v, ok := c.env.consts[e.Name]; ok {
			return constCode(v)
		}
		if c.lookupModule(e.Name) >= 0 {
			c.errorf(e.Pos, "'%s' is a module: use %s::name", e.Name, e.Name)
		} else if c.mc.funcs[e.Name] != nil || c.env.funcs[e.Name] != nil {
			c.errorf(e.Pos, "undefined variable '%s' (a function of that name exists: call it, or use Fn(\"%s\"))", e.Name, e.Name)
		} else {
			c.errorf(e.Pos, "undefined variable '%s'", e.Name)
		}
		return constCode(Value{})
	}
	return c.read(a)
}

// read compiles a read of a resolved variable.
func (c *compiler) read(a access) code {
	idx := a.idx
	switch a.kind {
	case accLocal:
		return func(fr *frame) (Value, error) { return fr.locals[idx], nil }
	case accCell:
		return func(fr *frame) (Value, error) { return fr.locals[idx].cell().v, nil }
	case accFree:
		return func(fr *frame) (Value, error) { return fr.fn.cells[idx].v, nil }
	default:
		return func(fr *frame) (Value, error) { return fr.mod.globals[idx], nil }
	}
}

func pathString(p []syntax.Ident) string {
	parts := make([]string, len(p))
	for i, id := range p {
		parts[i] = id.Name
	}
	return strings.Join(parts, "::")
}

// path compiles ns::name, global::NAME, or a namespaced host constant.
func (c *compiler) path(e *syntax.PathExpr) code {
	full := pathString(e.Path)
	if len(e.Path) == 2 {
		ns, name := e.Path[0].Name, e.Path[1].Name
		if ns == "global" {
			b := c.mc.globals[name]
			if b == nil || !b.isConst || !b.top {
				if b != nil && !b.isConst {
					c.errorf(e.Pos, "global::%s is a variable: only top-level constants are reachable through global::", name)
				} else {
					c.errorf(e.Pos, "undefined constant 'global::%s'", name)
				}
				return constCode(Value{})
			}
			slot := b.slot
			return func(fr *frame) (Value, error) { return fr.mod.globals[slot], nil }
		}
		if idx := c.lookupModule(ns); idx >= 0 {
			mc := c.mc.imports[idx]
			b := mc.exports[name]
			if b == nil {
				if mc.globals[name] != nil {
					c.errorf(e.Path[1].Pos, "'%s' is not exported by module '%s' (%s)", name, ns, mc.path)
				} else {
					c.errorf(e.Path[1].Pos, "module '%s' (%s) has no exported variable '%s'", ns, mc.path, name)
				}
				return constCode(Value{})
			}
			slot := b.slot
			return func(fr *frame) (Value, error) { return fr.mod.imports[idx].globals[slot], nil }
		}
	}
	if v, ok := c.env.consts[full]; ok {
		return constCode(v)
	}
	c.errorf(e.Pos, "undefined variable '%s'", full)
	return constCode(Value{})
}

// ---- Literals ----

func (c *compiler) interp(e *syntax.InterpString) code {
	parts := make([]code, len(e.Parts))
	for i, p := range e.Parts {
		parts[i] = c.expr(p)
	}
	pos := e.Pos
	return func(fr *frame) (Value, error) {
		var b strings.Builder
		for _, p := range parts {
			v, err := p(fr)
			if err != nil {
				return Value{}, err
			}
			if v.kind == KindString {
				b.WriteString(v.AsString())
			} else {
				b.WriteString(ToString(v))
			}
			if max := fr.th.limits.MaxStringSize; max > 0 && b.Len() > max {
				return Value{}, fr.errorf(pos, "string length %d exceeds the limit of %d bytes", b.Len(), max)
			}
		}
		return String(b.String()), nil
	}
}

func (c *compiler) array(e *syntax.ArrayExpr) code {
	elems := make([]code, len(e.Elems))
	for i, x := range e.Elems {
		elems[i] = c.valueExpr(x)
	}
	pos := e.Pos
	return func(fr *frame) (Value, error) {
		if max := fr.th.limits.MaxArraySize; max > 0 && len(elems) > max {
			return Value{}, fr.errorf(pos, "array size %d exceeds the limit of %d elements", len(elems), max)
		}
		out := make([]Value, len(elems))
		for i, x := range elems {
			v, err := x(fr)
			if err != nil {
				return Value{}, err
			}
			out[i] = v
		}
		return NewArray(out), nil
	}
}

func (c *compiler) mapLit(e *syntax.MapExpr) code {
	keys := make([]string, len(e.Entries))
	vals := make([]code, len(e.Entries))
	seen := map[string]syntax.Position{}
	for i, en := range e.Entries {
		if p, dup := seen[en.Key]; dup {
			c.errorf(en.KeyPos, "duplicate property '%s' in map literal (first at %s)", en.Key, p)
		}
		seen[en.Key] = en.KeyPos
		keys[i] = en.Key
		vals[i] = c.valueExpr(en.Value)
	}
	pos := e.Pos
	return func(fr *frame) (Value, error) {
		if max := fr.th.limits.MaxMapSize; max > 0 && len(keys) > max {
			return Value{}, fr.errorf(pos, "map size %d exceeds the limit of %d properties", len(keys), max)
		}
		m := make(map[string]Value, len(keys))
		for i, x := range vals {
			v, err := x(fr)
			if err != nil {
				return Value{}, err
			}
			m[keys[i]] = v
		}
		return NewMap(m), nil
	}
}

func (c *compiler) rangeExpr(e *syntax.RangeExpr) code {
	lo, hi := c.expr(e.Lo), c.expr(e.Hi)
	incl, pos := e.Inclusive, e.Pos
	// Ranges are never changed in place: one with constant bounds is
	// built once.
	if a, ok := constValue(e.Lo); ok && a.kind == KindInt {
		if b, ok := constValue(e.Hi); ok && b.kind == KindInt {
			return constCode(NewRange(a.AsInt(), b.AsInt(), incl))
		}
	}
	return func(fr *frame) (Value, error) {
		a, err := lo(fr)
		if err != nil {
			return Value{}, err
		}
		b, err := hi(fr)
		if err != nil {
			return Value{}, err
		}
		if a.kind != KindInt || b.kind != KindInt {
			return Value{}, fr.errorf(pos, "a range needs i64 bounds, got %s and %s", a.TypeName(), b.TypeName())
		}
		return NewRange(a.AsInt(), b.AsInt(), incl), nil
	}
}

// ---- Operators ----

func (c *compiler) unary(e *syntax.UnaryExpr) code {
	x := c.expr(e.X)
	op, pos := e.Op, e.Pos
	if l, ok := e.X.(*syntax.Literal); ok {
		if v, err := unaryOp(op, literalValue(l)); err == nil {
			return constCode(v)
		}
	}
	if op == syntax.BANG {
		return func(fr *frame) (Value, error) {
			v, err := x(fr)
			if err != nil {
				return Value{}, err
			}
			if v.kind == KindBool {
				return Bool(v.n == 0), nil
			}
			return Value{}, fr.errorf(pos, "operator '!' cannot be applied to %s", v.TypeName())
		}
	}
	return func(fr *frame) (Value, error) {
		v, err := x(fr)
		if err != nil {
			return Value{}, err
		}
		r, err := unaryOp(op, v)
		if err != nil {
			return Value{}, fr.wrapErr(pos, "", err)
		}
		return r, nil
	}
}

// condition evaluates a bool-valued operand of &&, ||, if, while, ...
func condition(fr *frame, x code, pos syntax.Position, what string) (bool, error) {
	v, err := x(fr)
	if err != nil {
		return false, err
	}
	if v.kind != KindBool {
		return false, fr.errorf(pos, "%s must be a bool, got %s", what, v.TypeName())
	}
	return v.n != 0, nil
}

func (c *compiler) binary(e *syntax.BinaryExpr) code {
	op, pos := e.Op, e.Pos
	x, y := c.expr(e.X), c.expr(e.Y)
	switch op {
	case syntax.ANDAND, syntax.OROR:
		what := "the left operand of '" + op.String() + "'"
		whatR := "the right operand of '" + op.String() + "'"
		and := op == syntax.ANDAND
		return func(fr *frame) (Value, error) {
			l, err := condition(fr, x, pos, what)
			if err != nil {
				return Value{}, err
			}
			if l != and {
				return Bool(l), nil
			}
			r, err := condition(fr, y, pos, whatR)
			return Bool(r), err
		}
	case syntax.QQ:
		return func(fr *frame) (Value, error) {
			l, err := x(fr)
			if err != nil || l.kind != KindUnit {
				return l, err
			}
			return y(fr)
		}
	}
	// Constant folding.
	lx, okx := e.X.(*syntax.Literal)
	ly, oky := e.Y.(*syntax.Literal)
	if okx && oky {
		if v, err := binaryOp(op, literalValue(lx), literalValue(ly), 0); err == nil {
			return constCode(v)
		}
	}
	// Integer fast paths: a local variable against an integer constant, the
	// shape of loop conditions and counters.
	if id, ok := e.X.(*syntax.IdentExpr); ok && oky {
		if a, ok := c.resolve(id.Name); ok && a.kind == accLocal {
			if k, ok := ly.Value.(int64); ok {
				if f := intConstOp(op, a.idx, k, pos); f != nil {
					return f
				}
			}
		}
	}
	return func(fr *frame) (Value, error) {
		a, err := x(fr)
		if err != nil {
			return Value{}, err
		}
		b, err := y(fr)
		if err != nil {
			return Value{}, err
		}
		if a.kind == KindInt && b.kind == KindInt {
			i, j := int64(a.n), int64(b.n)
			switch op {
			case syntax.PLUS:
				if r, ok := addInt(i, j); ok {
					return Int(r), nil
				}
			case syntax.MINUS:
				if r, ok := subInt(i, j); ok {
					return Int(r), nil
				}
			case syntax.LT:
				return Bool(i < j), nil
			case syntax.GT:
				return Bool(i > j), nil
			case syntax.LE:
				return Bool(i <= j), nil
			case syntax.GE:
				return Bool(i >= j), nil
			case syntax.EQ, syntax.IS:
				return Bool(i == j), nil
			case syntax.NE, syntax.NOT:
				return Bool(i != j), nil
			}
		}
		r, err := binaryOp(op, a, b, fr.th.limits.MaxStringSize)
		if err != nil {
			return Value{}, fr.wrapErr(pos, "", err)
		}
		return r, nil
	}
}

// intConstOp specializes `local op k` for an integer constant k.
func intConstOp(op syntax.Token, slot int, k int64, pos syntax.Position) code {
	slow := func(fr *frame, v Value) (Value, error) {
		r, err := binaryOp(op, v, Int(k), fr.th.limits.MaxStringSize)
		if err != nil {
			return Value{}, fr.wrapErr(pos, "", err)
		}
		return r, nil
	}
	switch op {
	case syntax.LT:
		return func(fr *frame) (Value, error) {
			if v := fr.locals[slot]; v.kind == KindInt {
				return Bool(int64(v.n) < k), nil
			}
			return slow(fr, fr.locals[slot])
		}
	case syntax.GT:
		return func(fr *frame) (Value, error) {
			if v := fr.locals[slot]; v.kind == KindInt {
				return Bool(int64(v.n) > k), nil
			}
			return slow(fr, fr.locals[slot])
		}
	case syntax.LE:
		return func(fr *frame) (Value, error) {
			if v := fr.locals[slot]; v.kind == KindInt {
				return Bool(int64(v.n) <= k), nil
			}
			return slow(fr, fr.locals[slot])
		}
	case syntax.GE:
		return func(fr *frame) (Value, error) {
			if v := fr.locals[slot]; v.kind == KindInt {
				return Bool(int64(v.n) >= k), nil
			}
			return slow(fr, fr.locals[slot])
		}
	case syntax.EQ, syntax.IS:
		return func(fr *frame) (Value, error) {
			if v := fr.locals[slot]; v.kind == KindInt {
				return Bool(int64(v.n) == k), nil
			}
			return slow(fr, fr.locals[slot])
		}
	case syntax.PLUS:
		return func(fr *frame) (Value, error) {
			if v := fr.locals[slot]; v.kind == KindInt {
				if r, ok := addInt(int64(v.n), k); ok {
					return Int(r), nil
				}
			}
			return slow(fr, fr.locals[slot])
		}
	case syntax.MINUS:
		return func(fr *frame) (Value, error) {
			if v := fr.locals[slot]; v.kind == KindInt {
				if r, ok := subInt(int64(v.n), k); ok {
					return Int(r), nil
				}
			}
			return slow(fr, fr.locals[slot])
		}
	}
	return nil
}

// ---- Blocks and control flow ----

func (c *compiler) block(e *syntax.BlockExpr) code {
	c.pushScope()
	body := c.stmts(e.Stmts, false)
	c.popScope()
	return body
}

func (c *compiler) ifExpr(e *syntax.IfExpr) code {
	cond := c.expr(e.Cond)
	then := c.block(e.Then)
	var els code
	if e.Else != nil {
		els = c.expr(e.Else)
	}
	pos := e.Cond.Position()
	return func(fr *frame) (Value, error) {
		ok, err := condition(fr, cond, pos, "the condition of 'if'")
		if err != nil {
			return Value{}, err
		}
		if ok {
			return then(fr)
		}
		if els != nil {
			return els(fr)
		}
		return Value{}, nil
	}
}

type switchArm struct {
	values []code
	ranges []bool // values[i] is a range pattern
	cond   code
	body   code
	pos    syntax.Position
}

func (c *compiler) switchExpr(e *syntax.SwitchExpr) code {
	x := c.expr(e.X)
	arms := make([]switchArm, len(e.Cases))
	var def code
	for i, cs := range e.Cases {
		a := switchArm{pos: cs.Pos}
		for _, v := range cs.Values {
			_, isRange := v.(*syntax.RangeExpr)
			a.values = append(a.values, c.expr(v))
			a.ranges = append(a.ranges, isRange)
		}
		if cs.Cond != nil {
			a.cond = c.expr(cs.Cond)
		}
		a.body = c.expr(cs.Body)
		if len(cs.Values) == 0 && cs.Cond == nil {
			if def != nil {
				c.errorf(cs.Pos, "switch has more than one default arm '_'")
			}
			def = a.body
			if i != len(e.Cases)-1 {
				c.errorf(cs.Pos, "the default arm '_' must be the last arm of a switch")
			}
		}
		arms[i] = a
	}
	return func(fr *frame) (Value, error) {
		v, err := x(fr)
		if err != nil {
			return Value{}, err
		}
		for i := range arms {
			a := &arms[i]
			match := len(a.values) == 0
			for j, pc := range a.values {
				p, err := pc(fr)
				if err != nil {
					return Value{}, err
				}
				if a.ranges[j] {
					match = v.kind == KindInt && p.AsRange().Contains(v.AsInt())
				} else {
					match = Equal(v, p)
				}
				if match {
					break
				}
			}
			if !match {
				continue
			}
			if a.cond != nil {
				ok, err := condition(fr, a.cond, a.pos, "the condition of a switch arm")
				if err != nil {
					return Value{}, err
				}
				if !ok {
					continue
				}
			}
			return a.body(fr)
		}
		return Value{}, nil
	}
}

// loopBody runs one iteration's body and says whether the loop goes on.
// A break's value becomes the loop's value.
func loopStep(fr *frame, body code) (stop bool, result Value, err error) {
	_, err = body(fr)
	if err == nil || err == errContinue {
		return false, Value{}, nil
	}
	if err == errBreak {
		v := fr.ret
		fr.ret = Value{}
		return true, v, nil
	}
	return true, Value{}, err
}

func (c *compiler) loopBody(b *syntax.BlockExpr) code {
	c.fn.loops++
	body := c.block(b)
	c.fn.loops--
	return body
}

func (c *compiler) whileExpr(e *syntax.WhileExpr) code {
	pos := e.Pos
	cpos := e.Cond.Position()
	cond := c.expr(e.Cond)
	body := c.loopBody(e.Body)
	return func(fr *frame) (Value, error) {
		for {
			if err := fr.charge(pos); err != nil {
				return Value{}, err
			}
			v, err := cond(fr)
			if err != nil {
				return Value{}, err
			}
			if v.kind != KindBool {
				return Value{}, fr.errorf(cpos, "the condition of 'while' must be a bool, got %s", v.TypeName())
			}
			if v.n == 0 {
				return Value{}, nil
			}
			if stop, r, err := loopStep(fr, body); stop {
				return r, err
			}
		}
	}
}

func (c *compiler) loopExpr(e *syntax.LoopExpr) code {
	pos := e.Pos
	body := c.loopBody(e.Body)
	return func(fr *frame) (Value, error) {
		for {
			if err := fr.charge(pos); err != nil {
				return Value{}, err
			}
			if stop, r, err := loopStep(fr, body); stop {
				return r, err
			}
		}
	}
}

func (c *compiler) doExpr(e *syntax.DoExpr) code {
	pos, cpos := e.Pos, e.Cond.Position()
	body := c.loopBody(e.Body)
	cond := c.expr(e.Cond)
	until := e.Until
	what := "the condition of 'do ... while'"
	if until {
		what = "the condition of 'do ... until'"
	}
	return func(fr *frame) (Value, error) {
		for {
			if err := fr.charge(pos); err != nil {
				return Value{}, err
			}
			if stop, r, err := loopStep(fr, body); stop {
				return r, err
			}
			ok, err := condition(fr, cond, cpos, what)
			if err != nil {
				return Value{}, err
			}
			if ok == until {
				return Value{}, nil
			}
		}
	}
}

// setter returns code storing a value into a freshly declared binding.
func setter(b *binding) func(fr *frame, v Value) {
	slot := b.slot
	if b.cell {
		return func(fr *frame, v Value) { fr.locals[slot] = cellValue(&cell{v: v}) }
	}
	return func(fr *frame, v Value) { fr.locals[slot] = v }
}

func (c *compiler) forExpr(e *syntax.ForExpr) code {
	pos := e.Pos
	iter := c.expr(e.Iter)
	ipos := e.Iter.Position()
	c.pushScope()
	setVar := setter(c.declare(&e.Var, false))
	var setIdx func(*frame, Value)
	if e.Index != nil {
		setIdx = setter(c.declare(e.Index, false))
	}
	body := c.loopBody(e.Body)
	c.popScope()
	return func(fr *frame) (Value, error) {
		it, err := iter(fr)
		if err != nil {
			return Value{}, err
		}
		step := func(i int64, v Value) (bool, Value, error) {
			if err := fr.charge(pos); err != nil {
				return true, Value{}, err
			}
			setVar(fr, v)
			if setIdx != nil {
				setIdx(fr, Int(i))
			}
			return loopStep(fr, body)
		}
		switch it.kind {
		case KindRange:
			r := it.AsRange()
			lo, hi := r.Lo, r.End()
			for i := lo; i < hi; i++ {
				if stop, v, err := step(i-lo, Int(i)); stop {
					return v, err
				}
			}
			if r.Inclusive && r.Hi == hi && hi >= lo {
				// inclusive range ending at MaxInt64
				if stop, v, err := step(hi-lo, Int(hi)); stop {
					return v, err
				}
			}
			return Value{}, nil
		case KindArray:
			elems := it.AsArray().Elems
			for i, v := range elems {
				if stop, r, err := step(int64(i), v.Clone()); stop {
					return r, err
				}
			}
			return Value{}, nil
		case KindString:
			i := int64(0)
			for _, ch := range it.AsString() {
				if stop, r, err := step(i, Char(ch)); stop {
					return r, err
				}
				i++
			}
			return Value{}, nil
		case KindHost:
			if h, ok := it.AsHost().(HostIterable); ok {
				for i, v := range h.Elems() {
					if stop, r, err := step(int64(i), v); stop {
						return r, err
					}
				}
				return Value{}, nil
			}
		case KindMap:
			return Value{}, fr.errorf(ipos, "cannot iterate over a map: iterate over m.keys() or m.values()")
		}
		return Value{}, fr.errorf(ipos, "cannot iterate over a value of type %s", it.TypeName())
	}
}

func (c *compiler) tryExpr(e *syntax.TryExpr) code {
	body := c.block(e.Body)
	c.pushScope()
	var setErr func(*frame, Value)
	if e.ErrVar != nil {
		setErr = setter(c.declare(e.ErrVar, false))
	}
	handler := c.block(e.Catch)
	c.popScope()
	return func(fr *frame) (Value, error) {
		v, err := body(fr)
		if err == nil {
			return v, nil
		}
		ee, ok := err.(*EvalError)
		if !ok || ee.Fatal {
			return Value{}, err
		}
		if setErr != nil {
			if ee.Thrown != nil {
				setErr(fr, *ee.Thrown)
			} else {
				setErr(fr, String(ee.Msg))
			}
		}
		return handler(fr)
	}
}

// ---- Closures and directives ----

func (c *compiler) closure(e *syntax.ClosureExpr) code {
	fs := &fnState{parent: c.fn, closure: true, scopes: [][]*binding{nil}}
	saved := c.fn
	c.fn = fs
	fc := &funcCode{pos: e.Pos, nparams: len(e.Params)}
	for i := range e.Params {
		b := c.declare(&e.Params[i], false)
		if b.cell {
			fc.cellParams = append(fc.cellParams, b.slot)
		}
	}
	fc.body = c.valueExpr(e.Body)
	fc.nslots = fs.nslots
	c.fn = saved
	free := fs.free
	if len(free) == 0 {
		return func(fr *frame) (Value, error) {
			return Value{kind: KindFn, p: ptr(&Func{code: fc, mod: fr.mod})}, nil
		}
	}
	return func(fr *frame) (Value, error) {
		cells := make([]*cell, len(free))
		for i, fv := range free {
			if fv.fromLocal {
				cells[i] = fr.locals[fv.idx].cell()
			} else {
				cells[i] = fr.fn.cells[fv.idx]
			}
		}
		return Value{kind: KindFn, p: ptr(&Func{code: fc, cells: cells, mod: fr.mod})}, nil
	}
}

func (c *compiler) directive(e *syntax.DirectiveExpr) code {
	kind := strings.ToLower(e.Kind.String())
	var svc code
	if e.Service != nil {
		svc = c.expr(e.Service)
	}
	body := c.expr(e.Body)
	hook := c.env.Directive
	if hook == nil {
		c.errorf(e.Pos, "'%s' directives are only available in rule files", kind)
		return constCode(Value{})
	}
	name, pos, namePos := e.Name, e.Pos, e.NamePos
	return func(fr *frame) (Value, error) {
		d := &Directive{Kind: kind, Name: name, Pos: pos, NamePos: namePos}
		var err error
		if svc != nil {
			if d.Service, err = svc(fr); err != nil {
				return Value{}, err
			}
		}
		if d.Body, err = body(fr); err != nil {
			return Value{}, err
		}
		v, err := hook(d)
		if err != nil {
			return Value{}, fr.wrapErr(pos, fmt.Sprintf("%s %q", kind, name), err)
		}
		return v, nil
	}
}
