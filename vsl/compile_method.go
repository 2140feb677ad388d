package vsl

import (
	"unicode/utf8"

	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// isPlace reports whether e names storage: a variable, `this`, or an
// element or property of one.
func isPlace(e syntax.Expr) bool {
	switch e := e.(type) {
	case *syntax.IdentExpr, *syntax.ThisExpr:
		return true
	case *syntax.IndexExpr:
		return !e.Optional && isPlace(e.X)
	case *syntax.DotExpr:
		return !e.Optional && isPlace(e.X)
	}
	return false
}

// receiver compiles the receiver of a call that may change it in place: a
// locator when it names storage, else code for its value.
func (c *compiler) receiver(e syntax.Expr) (locator, code) {
	if isPlace(e) {
		if id, ok := e.(*syntax.IdentExpr); ok {
			if _, found := c.resolve(id.Name); !found {
				return nil, c.expr(e) // a host constant or an error
			}
		}
		if lc, ok := c.place(e, "change"); ok {
			return lc, nil
		}
		return nil, constCode(Value{})
	}
	return nil, c.expr(e)
}

// constReceiver reports whether e names (an element or property of) a
// constant, which a method may read but not change; name is the constant's.
func (c *compiler) constReceiver(e syntax.Expr) (name string, ok bool) {
	for {
		switch x := e.(type) {
		case *syntax.IndexExpr:
			e = x.X
		case *syntax.DotExpr:
			e = x.X
		case *syntax.IdentExpr:
			if a, found := c.resolve(x.Name); found {
				return x.Name, a.b.isConst
			}
			_, isConst := c.env.consts[x.Name]
			return x.Name, isConst
		case *syntax.PathExpr:
			return pathString(x.Path), true
		default:
			return "", false
		}
	}
}

func (c *compiler) methodCall(e *syntax.MethodCallExpr) code {
	pos, name := e.Pos, e.Name
	switch name {
	case "call":
		recv := c.expr(e.Recv)
		return dynamicCall(recv, c.argCodes(e.Args), pos)
	case "type_of":
		if len(e.Args) == 0 {
			recv := c.expr(e.Recv)
			optional := e.Optional
			return func(fr *frame) (Value, error) {
				v, err := recv(fr)
				if err != nil || (optional && v.kind == KindUnit) {
					return Value{}, err
				}
				return String(v.TypeName()), nil
			}
		}
	case "curry":
		recv := c.expr(e.Recv)
		args := c.argCodes(e.Args)
		return func(fr *frame) (Value, error) {
			fv, err := recv(fr)
			if err != nil {
				return Value{}, err
			}
			f := fv.AsFn()
			if f == nil {
				return Value{}, fr.errorf(pos, "curry needs a function value, got %s", fv.TypeName())
			}
			nf := *f
			nf.curried = append(append([]Value{}, f.curried...), make([]Value, len(args))...)
			for i, a := range args {
				if nf.curried[len(f.curried)+i], err = a(fr); err != nil {
					return Value{}, err
				}
			}
			return Value{kind: KindFn, p: ptr(&nf)}, nil
		}
	}
	args := c.argCodes(e.Args)
	if fc := pickOverload(c.mc.funcs[name], len(args)); fc != nil {
		return c.scriptMethod(e, fc, args)
	}
	b := c.env.funcs[name]
	if b == nil {
		c.errorf(pos, "function not found: %s (called as a method with %d argument(s))", name, len(args))
		return constCode(Value{})
	}
	n := len(args) + 1
	optional := e.Optional
	if b.Mutates {
		inPlace := b.InPlace
		var lc locator
		var rv code
		var constName string // a constant receiver of a call that may only read it
		if name, isConst := c.constReceiver(e.Recv); isConst && inPlace != nil {
			rv, constName = c.expr(e.Recv), name
		} else {
			lc, rv = c.receiver(e.Recv)
		}
		return func(fr *frame) (Value, error) {
			th := fr.th
			var l loc
			var recv Value
			var err error
			if lc != nil {
				if l, err = lc(fr); err != nil {
					return Value{}, err
				}
				recv = l.get()
			} else if recv, err = rv(fr); err != nil {
				return Value{}, err
			}
			if optional && recv.kind == KindUnit {
				return Value{}, nil
			}
			// An overload that only reads its receiver (InPlace says so)
			// may run on constants and shared variables; one that changes
			// it needs a writable place, or else works on a copy of a
			// temporary, which may share storage with a constant.
			changing := inPlace == nil || inPlace(recv)
			if changing {
				if constName != "" {
					return Value{}, fr.errorf(pos, "cannot change constant '%s'", constName)
				}
				if err := l.writable(fr); err != nil {
					return Value{}, err
				}
				if lc == nil {
					recv = recv.Clone()
				}
			}
			store := lc != nil && changing
			base, err := evalArgs(fr, args, n)
			if err != nil {
				return Value{}, err
			}
			copy(th.stack[base+1:base+n], th.stack[base:base+n-1])
			th.stack[base] = recv
			v, err := th.invoke(fr, b, th.stack[base:base+n], pos)
			recv = th.stack[base]
			th.stack = th.stack[:base]
			if err != nil {
				return Value{}, err
			}
			if !store {
				return v, nil
			}
			if err := th.checkSize(recv); err != nil {
				return Value{}, fr.wrapErr(pos, name, err)
			}
			if lc != nil {
				if err := l.set(recv); err != nil {
					return Value{}, fr.wrapErr(pos, name, err)
				}
			}
			return v, nil
		}
	}
	if folded, ok := c.fold(b, append([]syntax.Expr{e.Recv}, e.Args...), pos); ok {
		return folded
	}
	recv := c.expr(e.Recv)
	return func(fr *frame) (Value, error) {
		th := fr.th
		r, err := recv(fr)
		if err != nil {
			return Value{}, err
		}
		if optional && r.kind == KindUnit {
			return Value{}, nil
		}
		base := th.reserve(n)
		th.stack[base] = r
		for i, a := range args {
			v, err := a(fr)
			if err != nil {
				th.stack = th.stack[:base]
				return Value{}, err
			}
			th.stack[base+1+i] = v
		}
		v, err := th.invoke(fr, b, th.stack[base:base+n], pos)
		th.stack = th.stack[:base]
		return v, err
	}
}

// scriptMethod compiles recv.f(args) for a script function f: `this` is
// bound to the receiver, and changes to it are stored back.
func (c *compiler) scriptMethod(e *syntax.MethodCallExpr, fc *funcCode, args []code) code {
	pos := e.Pos
	lc, rv := c.receiver(e.Recv)
	return func(fr *frame) (Value, error) {
		if err := fr.charge(pos); err != nil {
			return Value{}, err
		}
		var l loc
		var recv Value
		var err error
		if lc != nil {
			if l, err = lc(fr); err != nil {
				return Value{}, err
			}
			if err := l.writable(fr); err != nil {
				return Value{}, err
			}
			recv = l.get()
		} else if recv, err = rv(fr); err != nil {
			return Value{}, err
		} else {
			recv = recv.Clone() // a temporary: `this` must not share its storage
		}
		base, err := evalArgs(fr, args, fc.nslots)
		if err != nil {
			return Value{}, err
		}
		this := recv
		v, err := fr.th.enter(fc, nil, fr.mod, base, &this, pos)
		if err != nil {
			return Value{}, err
		}
		if lc != nil {
			if err := l.set(this); err != nil {
				return Value{}, fr.wrapErr(pos, "", err)
			}
		}
		return v, nil
	}
}

func (c *compiler) dot(e *syntax.DotExpr) code {
	x := c.expr(e.X)
	name, pos, optional := e.Name, e.Pos, e.Optional
	getter := c.env.funcs[name]
	return func(fr *frame) (Value, error) {
		v, err := x(fr)
		if err != nil {
			return Value{}, err
		}
		switch v.kind {
		case KindMap:
			return v.AsMap().M[name], nil
		case KindUnit:
			if optional {
				return Value{}, nil
			}
		case KindHost:
			if ha, ok := v.AsHost().(HostAttrs); ok {
				r, found, err := ha.Attr(name)
				if err != nil {
					return Value{}, fr.wrapErr(pos, name, err)
				}
				if found {
					return r, nil
				}
			}
		}
		// A property read never changes its value: builtins that would
		// (sort, pop, ...) are methods only.
		if getter != nil && !changes(getter, v) {
			th := fr.th
			base := th.reserve(1)
			th.stack[base] = v
			call := th.beginCall(name, pos)
			r, err := callBuiltin(getter, call, th.stack[base:base+1])
			th.endCall()
			th.stack = th.stack[:base]
			if err == nil {
				return r, nil
			}
			if err != ErrNoMatch {
				return Value{}, fr.wrapErr(pos, name, err)
			}
		}
		return Value{}, fr.errorf(pos, "property '%s' not found on a value of type %s", name, v.TypeName())
	}
}

func (c *compiler) index(e *syntax.IndexExpr) code {
	x, ix := c.expr(e.X), c.expr(e.Index)
	pos, optional := e.Pos, e.Optional
	return func(fr *frame) (Value, error) {
		v, err := x(fr)
		if err != nil {
			return Value{}, err
		}
		if optional && v.kind == KindUnit {
			return Value{}, nil
		}
		iv, err := ix(fr)
		if err != nil {
			return Value{}, err
		}
		switch v.kind {
		case KindArray:
			a := v.AsArray()
			i, err := arrayIndex(iv, len(a.Elems))
			if err != nil {
				return Value{}, fr.wrapErr(pos, "", err)
			}
			return a.Elems[i], nil
		case KindMap:
			if iv.kind != KindString {
				return Value{}, fr.errorf(pos, "a map is indexed by a string, not %s", iv.TypeName())
			}
			return v.AsMap().M[iv.AsString()], nil
		case KindString:
			s := v.AsString()
			if iv.kind == KindInt && iv.AsInt() >= 0 && iv.AsInt() < int64(len(s)) && isASCII(s) {
				return Char(rune(s[iv.AsInt()])), nil
			}
			n := utf8.RuneCountInString(s)
			i, err := arrayIndex(iv, n)
			if err != nil {
				return Value{}, fr.wrapErr(pos, "", err)
			}
			for j, r := range []rune(s) {
				if j == i {
					return Char(r), nil
				}
			}
		}
		return Value{}, fr.errorf(pos, "cannot index into a value of type %s", v.TypeName())
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
