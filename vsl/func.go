package vsl

import (
	"unsafe"

	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// Func is a function value: a closure, a pointer to a script function
// (Fn("name")) or a pointer to a builtin, with any arguments curried into it.
type Func struct {
	name      string
	code      *funcCode   // a closure, or a script function of known arity
	overloads []*funcCode // a named pointer to script functions: chosen by arity at the call
	builtin   *Builtin
	cells     []*cell // the variables a closure captured
	mod       *module // the module the function was defined in
	curried   []Value
}

// Name returns the function's name ("" for an anonymous closure).
func (f *Func) Name() string { return f.name }

// Pos returns where the function or closure was defined (unknown for builtins).
func (f *Func) Pos() syntax.Position {
	if f.code != nil {
		return f.code.pos
	}
	if len(f.overloads) > 0 {
		return f.overloads[0].pos
	}
	return syntax.Position{}
}

// String renders the function as Rhai does: Fn(name).
func (f *Func) String() string {
	if f.name == "" {
		return "Fn(<closure>)"
	}
	return "Fn(" + f.name + ")"
}

// cell is a variable captured by a closure: the enclosing frame and the
// closures share it.
type cell struct {
	v Value
}

// funcCode is the compiled body of a script function or closure.
type funcCode struct {
	name       string
	pos        syntax.Position
	nparams    int
	nslots     int
	cellParams []int // parameters captured by closures: boxed on entry
	body       code
	private    bool
}

func ptr[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

func (v Value) cell() *cell { return (*cell)(v.p) }
