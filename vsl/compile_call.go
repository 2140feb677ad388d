package vsl

import (
	"fmt"
	"io"

	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// argCodes compiles call arguments (copied like any stored value).
func (c *compiler) argCodes(args []syntax.Expr) []code {
	out := make([]code, len(args))
	for i, a := range args {
		out[i] = c.valueExpr(a)
	}
	return out
}

// evalArgs evaluates args into fresh stack slots and returns their base.
// The caller truncates the stack back to base.
func evalArgs(fr *frame, args []code, nslots int) (int, error) {
	th := fr.th
	base := th.reserve(nslots)
	for i, a := range args {
		v, err := a(fr)
		if err != nil {
			th.stack = th.stack[:base]
			return base, err
		}
		th.stack[base+i] = v
	}
	return base, nil
}

// staticCall compiles a call of a known script function.
func staticCall(fc *funcCode, args []code, modIdx int, pos syntax.Position) code {
	return func(fr *frame) (Value, error) {
		if err := fr.charge(pos); err != nil {
			return Value{}, err
		}
		base, err := evalArgs(fr, args, fc.nslots)
		if err != nil {
			return Value{}, err
		}
		mod := fr.mod
		if modIdx >= 0 {
			mod = mod.imports[modIdx]
		}
		return fr.th.enter(fc, nil, mod, base, nil, pos)
	}
}

// constValue returns the value of a constant expression: a literal, or a
// sign or negation applied to one.
func constValue(e syntax.Expr) (Value, bool) {
	switch e := e.(type) {
	case *syntax.Literal:
		return literalValue(e), true
	case *syntax.UnaryExpr:
		if l, ok := e.X.(*syntax.Literal); ok {
			if v, err := unaryOp(e.Op, literalValue(l)); err == nil {
				return v, true
			}
		}
	}
	return Value{}, false
}

// maxFoldedString bounds the strings kept from folding: a run may have
// smaller limits than the defaults folding runs under.
const maxFoldedString = 1024

// fold evaluates a call of a pure builtin whose arguments are all constant
// once, at load time, so that rules do not redo it per message (a host
// function parsing an address or a CIDR range, say). Only results that
// nothing can change in place are kept: scalars, short strings, ranges and
// host values (immutable by contract). A call that fails is left to fail
// at run time, where try/catch can see it.
func (c *compiler) fold(b *Builtin, argExprs []syntax.Expr, pos syntax.Position) (code, bool) {
	if !b.Pure || b.Mutates || !c.final {
		return nil, false
	}
	args := make([]Value, len(argExprs))
	for i, e := range argExprs {
		v, ok := constValue(e)
		if !ok {
			return nil, false
		}
		args[i] = v
	}
	v, err := callBuiltin(b, &Call{name: b.Name, pos: pos}, args)
	if err != nil {
		return nil, false
	}
	switch v.kind {
	case KindUnit, KindBool, KindInt, KindFloat, KindChar, KindRange, KindHost:
	case KindString:
		if v.n > maxFoldedString {
			return nil, false
		}
	default:
		return nil, false
	}
	return constCode(v), true
}

// builtinCall compiles a call of a builtin with evaluated arguments.
func builtinCall(b *Builtin, args []code, pos syntax.Position) code {
	n := len(args)
	return func(fr *frame) (Value, error) {
		base, err := evalArgs(fr, args, n)
		if err != nil {
			return Value{}, err
		}
		th := fr.th
		v, err := th.invoke(fr, b, th.stack[base:base+n], pos)
		th.stack = th.stack[:base]
		return v, err
	}
}

// invoke calls a builtin and checks its result against the size limits.
func (th *Thread) invoke(fr *frame, b *Builtin, args []Value, pos syntax.Position) (Value, error) {
	call := th.beginCall(b.Name, pos)
	v, err := callBuiltin(b, call, args)
	th.endCall()
	if err != nil {
		if err == ErrNoMatch {
			return Value{}, fr.errorf(pos, "function not found: %s", signature(b.Name, args))
		}
		return Value{}, fr.wrapErr(pos, b.Name, err)
	}
	if err := th.checkSize(v); err != nil {
		return Value{}, fr.wrapErr(pos, b.Name, err)
	}
	return v, nil
}

// checkSize enforces the size limits on a value a builtin produced or changed.
func (th *Thread) checkSize(v Value) error {
	lim := &th.limits
	switch v.kind {
	case KindString:
		if lim.MaxStringSize > 0 && int(v.n) > lim.MaxStringSize {
			return fmt.Errorf("string length %d exceeds the limit of %d bytes", v.n, lim.MaxStringSize)
		}
	case KindArray:
		if n := len(v.AsArray().Elems); lim.MaxArraySize > 0 && n > lim.MaxArraySize {
			return fmt.Errorf("array size %d exceeds the limit of %d elements", n, lim.MaxArraySize)
		}
	case KindMap:
		if n := len(v.AsMap().M); lim.MaxMapSize > 0 && n > lim.MaxMapSize {
			return fmt.Errorf("map size %d exceeds the limit of %d properties", n, lim.MaxMapSize)
		}
	}
	return nil
}

// dynamicCall compiles a call of a function value held in a variable.
func dynamicCall(fnc code, args []code, pos syntax.Position) code {
	return func(fr *frame) (Value, error) {
		if err := fr.charge(pos); err != nil {
			return Value{}, err
		}
		f, err := fnc(fr)
		if err != nil {
			return Value{}, err
		}
		vals := make([]Value, len(args))
		for i, a := range args {
			if vals[i], err = a(fr); err != nil {
				return Value{}, err
			}
		}
		v, err := fr.th.callValue(f, vals, pos, false)
		if err != nil {
			return Value{}, fr.wrapErr(pos, "", err)
		}
		return v, nil
	}
}

func (c *compiler) call(e *syntax.CallExpr) code {
	pos := e.Pos
	switch fn := e.Fn.(type) {
	case *syntax.PathExpr:
		full := pathString(fn.Path)
		args := c.argCodes(e.Args)
		if len(fn.Path) == 2 {
			if idx := c.lookupModule(fn.Path[0].Name); idx >= 0 {
				mc := c.mc.imports[idx]
				name := fn.Path[1].Name
				fc := pickOverload(mc.funcs[name], len(args))
				if fc == nil || fc.private {
					c.errorf(fn.Path[1].Pos, "function not found: %s with %d argument(s) in module %s", full, len(args), mc.path)
					return constCode(Value{})
				}
				return staticCall(fc, args, idx, pos)
			}
		}
		if b := c.env.funcs[full]; b != nil {
			if folded, ok := c.fold(b, e.Args, pos); ok {
				return folded
			}
			return builtinCall(b, args, pos)
		}
		c.errorf(pos, "function not found: %s", full)
		return constCode(Value{})
	case *syntax.IdentExpr:
		name := fn.Name
		if sp := c.special(name, e.Args, pos); sp != nil {
			return sp
		}
		if a, ok := c.resolve(name); ok {
			return dynamicCall(c.read(a), c.argCodes(e.Args), pos)
		}
		args := c.argCodes(e.Args)
		if fc := pickOverload(c.mc.funcs[name], len(args)); fc != nil {
			return staticCall(fc, args, -1, pos)
		}
		if b := c.env.funcs[name]; b != nil {
			if folded, ok := c.fold(b, e.Args, pos); ok {
				return folded
			}
			return builtinCall(b, args, pos)
		}
		if fcs := c.mc.funcs[name]; len(fcs) > 0 {
			c.errorf(pos, "function '%s' takes %d argument(s), not %d", name, fcs[0].nparams, len(args))
		} else {
			c.errorf(pos, "function not found: %s", name)
		}
		return constCode(Value{})
	}
	c.errorf(pos, "only a named function can be called this way: call a function value with .call(...)")
	return constCode(Value{})
}

// special compiles the functions the runtime itself provides, or returns nil.
func (c *compiler) special(name string, argExprs []syntax.Expr, pos syntax.Position) code {
	switch name {
	case "print", "debug":
		if len(argExprs) > 1 {
			c.errorf(pos, "%s takes one argument", name)
		}
		var arg code
		if len(argExprs) == 1 {
			arg = c.expr(argExprs[0])
		}
		dbg := name == "debug"
		return func(fr *frame) (Value, error) {
			var v Value
			if arg != nil {
				var err error
				if v, err = arg(fr); err != nil {
					return Value{}, err
				}
			}
			th := fr.th
			w := th.Out
			s := ToString(v)
			if dbg {
				s = Debug(v)
				if th.DebugOut != nil {
					w = th.DebugOut
				}
			}
			if w != nil {
				io.WriteString(w, s+"\n")
			}
			return Value{}, nil
		}
	case "type_of":
		if len(argExprs) != 1 {
			c.errorf(pos, "type_of takes one argument")
			return constCode(Value{})
		}
		arg := c.expr(argExprs[0])
		return func(fr *frame) (Value, error) {
			v, err := arg(fr)
			if err != nil {
				return Value{}, err
			}
			return String(v.TypeName()), nil
		}
	case "eval":
		c.errorf(pos, "eval is disabled in vSL")
		return constCode(Value{})
	case "Fn":
		if len(argExprs) != 1 {
			c.errorf(pos, "Fn takes one argument: the function's name")
			return constCode(Value{})
		}
		arg := c.expr(argExprs[0])
		mc, env := c.mc, c.env
		return func(fr *frame) (Value, error) {
			v, err := arg(fr)
			if err != nil {
				return Value{}, err
			}
			if v.kind != KindString {
				return Value{}, fr.errorf(pos, "Fn expects a function name (string), got %s", v.TypeName())
			}
			n := v.AsString()
			if fcs := mc.funcs[n]; len(fcs) > 0 {
				return Value{kind: KindFn, p: ptr(&Func{name: n, overloads: fcs, mod: fr.mod})}, nil
			}
			if b := env.funcs[n]; b != nil {
				return Value{kind: KindFn, p: ptr(&Func{name: n, builtin: b})}, nil
			}
			return Value{}, fr.errorf(pos, "function not found: %s", n)
		}
	case "call":
		if len(argExprs) == 0 {
			c.errorf(pos, "call takes a function value and its arguments")
			return constCode(Value{})
		}
		return dynamicCall(c.expr(argExprs[0]), c.argCodes(argExprs[1:]), pos)
	case "is_def_fn":
		if len(argExprs) < 1 || len(argExprs) > 2 {
			c.errorf(pos, "is_def_fn takes a name and optionally a number of parameters")
			return constCode(Value{})
		}
		args := c.argCodes(argExprs)
		mc := c.mc
		return func(fr *frame) (Value, error) {
			n, err := args[0](fr)
			if err != nil {
				return Value{}, err
			}
			fcs := mc.funcs[n.AsString()]
			if len(args) == 1 {
				return Bool(len(fcs) > 0), nil
			}
			k, err := args[1](fr)
			if err != nil {
				return Value{}, err
			}
			return Bool(pickOverload(fcs, int(k.AsInt())) != nil), nil
		}
	}
	return nil
}

// ---- Places: what can be assigned or changed in place ----

// loc is a resolved storage location.
type loc struct {
	ptr *Value // a variable, cell or array element
	m   *Map   // or a map property m.M[key]
	key string
	str *Value // or the idx-th char of the string in *str
	idx int
	// ro is set when the location lies in a top-level variable frozen
	// after the script loaded: it may be read, not changed.
	ro *frozenVar
}

// frozenVar describes a top-level variable that rules share, for the error
// of an attempt to change it.
type frozenVar struct {
	name, what string
	pos        syntax.Position
}

// writable returns the error for changing l when it is read-only.
func (l loc) writable(fr *frame) error {
	if l.ro == nil {
		return nil
	}
	return fr.errorf(l.ro.pos, "cannot %s top-level variable '%s' after the script was loaded: rules share it", l.ro.what, l.ro.name)
}

func (l loc) get() Value {
	switch {
	case l.ptr != nil:
		return *l.ptr
	case l.m != nil:
		return l.m.M[l.key]
	case l.str != nil:
		return Char([]rune(l.str.AsString())[l.idx])
	}
	return Value{}
}

func (l loc) set(v Value) error {
	if l.ro != nil {
		return fmt.Errorf("cannot %s top-level variable '%s' after the script was loaded: rules share it", l.ro.what, l.ro.name)
	}
	switch {
	case l.ptr != nil:
		*l.ptr = v
	case l.m != nil:
		l.m.M[l.key] = v
	case l.str != nil:
		if v.kind != KindChar {
			return fmt.Errorf("only a char can be stored into a string by index, got %s", v.TypeName())
		}
		rs := []rune(l.str.AsString())
		rs[l.idx] = v.AsChar()
		*l.str = String(string(rs))
	}
	return nil
}

type locator func(fr *frame) (loc, error)

// place compiles e as a location; ok=false when e is not assignable. What
// says what is being done, for errors ("assign to", "change").
func (c *compiler) place(e syntax.Expr, what string) (locator, bool) {
	switch e := e.(type) {
	case *syntax.IdentExpr:
		a, ok := c.resolve(e.Name)
		if !ok {
			if _, isConst := c.env.consts[e.Name]; isConst {
				c.errorf(e.Pos, "cannot %s constant '%s'", what, e.Name)
			} else {
				c.errorf(e.Pos, "undefined variable '%s'", e.Name)
			}
			return nil, false
		}
		if a.b.isConst {
			c.errorf(e.Pos, "cannot %s constant '%s'", what, e.Name)
			return nil, false
		}
		idx, name, pos := a.idx, e.Name, e.Pos
		switch a.kind {
		case accLocal:
			return func(fr *frame) (loc, error) { return loc{ptr: &fr.locals[idx]}, nil }, true
		case accCell:
			return func(fr *frame) (loc, error) { return loc{ptr: &fr.locals[idx].cell().v}, nil }, true
		case accFree:
			return func(fr *frame) (loc, error) { return loc{ptr: &fr.fn.cells[idx].v}, nil }, true
		default:
			ro := &frozenVar{name: name, what: what, pos: pos}
			return func(fr *frame) (loc, error) {
				if fr.mod.frozen {
					return loc{ptr: &fr.mod.globals[idx], ro: ro}, nil
				}
				return loc{ptr: &fr.mod.globals[idx]}, nil
			}, true
		}
	case *syntax.ThisExpr:
		if !c.fn.method {
			c.errorf(e.Pos, "'this' is only available inside a function (called as a method)")
			return nil, false
		}
		pos := e.Pos
		return func(fr *frame) (loc, error) {
			if fr.this == nil {
				return loc{}, fr.errorf(pos, "'this' is not bound: the function was not called as a method")
			}
			return loc{ptr: fr.this}, nil
		}, true
	case *syntax.PathExpr:
		c.errorf(e.Pos, "cannot %s '%s': it belongs to another module or is a constant", what, pathString(e.Path))
		return nil, false
	case *syntax.IndexExpr:
		outer, ok := c.place(e.X, what)
		if !ok {
			return nil, false
		}
		index := c.expr(e.Index)
		pos := e.Pos
		return func(fr *frame) (loc, error) {
			ol, err := outer(fr)
			if err != nil {
				return loc{}, err
			}
			iv, err := index(fr)
			if err != nil {
				return loc{}, err
			}
			container := ol.get()
			switch container.kind {
			case KindArray:
				a := container.AsArray()
				i, err := arrayIndex(iv, len(a.Elems))
				if err != nil {
					return loc{}, fr.wrapErr(pos, "", err)
				}
				return loc{ptr: &a.Elems[i], ro: ol.ro}, nil
			case KindMap:
				if iv.kind != KindString {
					return loc{}, fr.errorf(pos, "a map is indexed by a string, not %s", iv.TypeName())
				}
				m := container.AsMap()
				if _, exists := m.M[iv.AsString()]; !exists && ol.ro == nil {
					if max := fr.th.limits.MaxMapSize; max > 0 && len(m.M) >= max {
						return loc{}, fr.errorf(pos, "map size exceeds the limit of %d properties", max)
					}
				}
				return loc{m: m, key: iv.AsString(), ro: ol.ro}, nil
			case KindString:
				if ol.ptr == nil {
					return loc{}, fr.errorf(pos, "cannot change a character of this string in place")
				}
				n := len([]rune(container.AsString()))
				i, err := arrayIndex(iv, n)
				if err != nil {
					return loc{}, fr.wrapErr(pos, "", err)
				}
				return loc{str: ol.ptr, idx: i, ro: ol.ro}, nil
			}
			return loc{}, fr.errorf(pos, "cannot index into a value of type %s", container.TypeName())
		}, true
	case *syntax.DotExpr:
		outer, ok := c.place(e.X, what)
		if !ok {
			return nil, false
		}
		name, pos := e.Name, e.Pos
		return func(fr *frame) (loc, error) {
			ol, err := outer(fr)
			if err != nil {
				return loc{}, err
			}
			container := ol.get()
			if container.kind != KindMap {
				return loc{}, fr.errorf(pos, "cannot set property '%s' of a value of type %s", name, container.TypeName())
			}
			m := container.AsMap()
			if _, exists := m.M[name]; !exists && ol.ro == nil {
				if max := fr.th.limits.MaxMapSize; max > 0 && len(m.M) >= max {
					return loc{}, fr.errorf(pos, "map size exceeds the limit of %d properties", max)
				}
			}
			return loc{m: m, key: name, ro: ol.ro}, nil
		}, true
	}
	return nil, false
}

// arrayIndex checks an index (negative counts from the end) against n.
func arrayIndex(iv Value, n int) (int, error) {
	if iv.kind != KindInt {
		return 0, fmt.Errorf("an index must be an i64, got %s", iv.TypeName())
	}
	i := iv.AsInt()
	if i < 0 {
		i += int64(n)
	}
	if i < 0 || i >= int64(n) {
		return 0, fmt.Errorf("index %d out of bounds for a length of %d", iv.AsInt(), n)
	}
	return int(i), nil
}

func (c *compiler) assign(s *syntax.AssignStmt) code {
	pos := s.Pos
	rhs := c.valueExpr(s.RHS)
	// Fast path: `x op= k` on a plain local integer.
	if id, ok := s.LHS.(*syntax.IdentExpr); ok {
		if a, ok := c.resolve(id.Name); ok && a.kind == accLocal && !a.b.isConst {
			if lit, ok := s.RHS.(*syntax.Literal); ok {
				if k, ok := lit.Value.(int64); ok {
					if f := intConstAssign(s.Op, a.idx, k, pos); f != nil {
						return f
					}
				}
			}
			if s.Op == syntax.ASSIGN {
				slot := a.idx
				return func(fr *frame) (Value, error) {
					v, err := rhs(fr)
					if err != nil {
						return Value{}, err
					}
					fr.locals[slot] = v
					return Value{}, nil
				}
			}
		}
	}
	nerr := len(c.errs)
	lc, ok := c.place(s.LHS, "assign to")
	if !ok {
		if len(c.errs) == nerr {
			c.errorf(s.LHS.Position(), "the left side of '%s' cannot be assigned to", s.Op)
		}
		return constCode(Value{})
	}
	if s.Op == syntax.ASSIGN {
		return func(fr *frame) (Value, error) {
			v, err := rhs(fr)
			if err != nil {
				return Value{}, err
			}
			l, err := lc(fr)
			if err != nil {
				return Value{}, err
			}
			if err := l.writable(fr); err != nil {
				return Value{}, err
			}
			if err := l.set(v); err != nil {
				return Value{}, fr.wrapErr(pos, "", err)
			}
			return Value{}, nil
		}
	}
	op, _ := s.Op.CompoundOp()
	return func(fr *frame) (Value, error) {
		v, err := rhs(fr)
		if err != nil {
			return Value{}, err
		}
		l, err := lc(fr)
		if err != nil {
			return Value{}, err
		}
		return Value{}, compound(fr, op, l, v, pos)
	}
}

// compound applies `place op= v`.
func compound(fr *frame, op syntax.Token, l loc, v Value, pos syntax.Position) error {
	if err := l.writable(fr); err != nil {
		return err
	}
	old := l.get()
	var r Value
	switch {
	case op == syntax.QQ:
		r = old
		if old.kind == KindUnit {
			r = v
		}
	case op == syntax.PLUS && old.kind == KindArray && v.kind != KindArray:
		// Rhai: array += value appends.
		a := old.AsArray()
		if max := fr.th.limits.MaxArraySize; max > 0 && len(a.Elems) >= max {
			return fr.errorf(pos, "array size exceeds the limit of %d elements", max)
		}
		a.Elems = append(a.Elems, v)
		return nil
	default:
		var err error
		if r, err = binaryOp(op, old, v, fr.th.limits.MaxStringSize); err != nil {
			return fr.wrapErr(pos, "", err)
		}
	}
	if err := fr.th.checkSize(r); err != nil {
		return fr.wrapErr(pos, "", err)
	}
	if err := l.set(r); err != nil {
		return fr.wrapErr(pos, "", err)
	}
	return nil
}

// intConstAssign specializes `local op= k` for integers.
func intConstAssign(tok syntax.Token, slot int, k int64, pos syntax.Position) code {
	op, ok := tok.CompoundOp()
	if !ok || (op != syntax.PLUS && op != syntax.MINUS) {
		return nil
	}
	slow := func(fr *frame) (Value, error) {
		return Value{}, compound(fr, op, loc{ptr: &fr.locals[slot]}, Int(k), pos)
	}
	if op == syntax.PLUS {
		return func(fr *frame) (Value, error) {
			v := &fr.locals[slot]
			if v.kind == KindInt {
				if r, ok := addInt(int64(v.n), k); ok {
					v.n = uint64(r)
					return Value{}, nil
				}
			}
			return slow(fr)
		}
	}
	return func(fr *frame) (Value, error) {
		v := &fr.locals[slot]
		if v.kind == KindInt {
			if r, ok := subInt(int64(v.n), k); ok {
				v.n = uint64(r)
				return Value{}, nil
			}
		}
		return slow(fr)
	}
}
