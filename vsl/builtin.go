package vsl

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// Builtin is a function implemented in Go and callable from scripts, either
// as a function `f(a, b)` or as a method `a.f(b)`: both pass args [a, b].
// A builtin with no one-argument form can still be read as a property when
// it accepts one argument (`s.len` calls len(s)).
type Builtin struct {
	// Name is the full name scripts call: "len", or namespaced "state::deny".
	Name string
	// Fn runs the builtin. It returns ErrNoMatch when no signature of the
	// builtin accepts the kinds of args; the runtime then reports
	// "function not found: name(type, type)". It must not keep args.
	Fn func(c *Call, args []Value) (Value, error)
	// Mutates says the builtin may change args[0] in place (Rhai's in-place
	// methods: push, trim, make_upper, ...). When the receiver of a method
	// call is a variable, element or property, the runtime stores args[0]
	// back into it after the call, and refuses the call on a constant or
	// on a top-level variable that rules share. On any other receiver (a
	// call's result, say) the builtin gets a copy.
	Mutates bool
	// InPlace, when set on a Mutates builtin, tells which receivers a call
	// actually changes. A call whose receiver it rejects leaves args[0]
	// alone, so it is allowed on constants and on top-level variables that
	// rules share (Rhai's split cuts an array in place but only reads a
	// string). Nil means every call may change its receiver.
	InPlace func(recv Value) bool

	// mutKinds, set on the standard library's in-place functions, says
	// which receiver kinds they change (every other kind is only read).
	mutKinds *[numKinds]bool
	// Pure says the builtin has no effects and depends only on its
	// arguments; it must not use the Call's Thread. A call whose arguments
	// are all constants is then evaluated once when the script loads, and
	// its result kept when nothing can change it in place (a scalar, a short
	// string, a range or a host value); a call that fails there is left to
	// fail when it runs.
	Pure bool
}

// ErrNoMatch is returned by a Builtin's Fn when no signature matches the
// arguments' kinds.
var ErrNoMatch = errors.New("no signature matches the arguments")

// Call is what a builtin sees of the running script: the thread's limits,
// output and context, and a way to call script functions and closures.
// The runtime reuses Call records: a builtin must not keep its *Call after
// it returns.
type Call struct {
	th   *Thread
	name string
	pos  syntax.Position
}

// Name returns the name the builtin was called by.
func (c *Call) Name() string { return c.name }

// Pos returns the position of the call in the script.
func (c *Call) Pos() syntax.Position { return c.pos }

// Thread returns the running thread, or nil outside a script run (tests).
func (c *Call) Thread() *Thread { return c.th }

// Limits returns the limits of the running thread (DefaultLimits outside a
// script run).
func (c *Call) Limits() Limits {
	if c.th == nil {
		return DefaultLimits()
	}
	return c.th.limits
}

// CheckSize returns an error when a string, array or map of n elements would
// exceed the thread's size limits. Builtins that build a value whose size is
// chosen by an argument (pad, repeat, splitting into many parts) call it
// before allocating. CheckString, CheckArray and CheckMap apply the limit of
// one kind.
func (c *Call) CheckSize(n int) error {
	lim := c.Limits()
	m := max(sizeLimit(lim.MaxStringSize, hardMaxString), sizeLimit(lim.MaxArraySize, hardMaxElems))
	if n > m {
		return fmt.Errorf("size %d exceeds the limit of %d", n, m)
	}
	return nil
}

// Even without a size limit (0), one value may not grow past these sizes:
// a builtin asked for more would fail to allocate, and running out of
// memory cannot be recovered from.
const (
	hardMaxString = 1 << 30 // bytes
	hardMaxElems  = 1 << 27 // array elements or map properties
)

// sizeLimit returns the limit that applies: the configured one, or the
// hard one when the configuration says unlimited.
func sizeLimit(configured, hard int) int {
	if configured <= 0 || configured > hard {
		return hard
	}
	return configured
}

// CheckString returns an error when a string of n bytes would exceed the
// thread's string size limit.
func (c *Call) CheckString(n int) error {
	if m := sizeLimit(c.Limits().MaxStringSize, hardMaxString); n > m {
		return fmt.Errorf("string length %d exceeds the limit of %d bytes", n, m)
	}
	return nil
}

// CheckArray returns an error when an array of n elements would exceed the
// thread's array size limit.
func (c *Call) CheckArray(n int) error {
	if m := sizeLimit(c.Limits().MaxArraySize, hardMaxElems); n > m {
		return fmt.Errorf("array size %d exceeds the limit of %d elements", n, m)
	}
	return nil
}

// CheckMap returns an error when a map of n properties would exceed the
// thread's map size limit.
func (c *Call) CheckMap(n int) error {
	if m := sizeLimit(c.Limits().MaxMapSize, hardMaxElems); n > m {
		return fmt.Errorf("map size %d exceeds the limit of %d properties", n, m)
	}
	return nil
}

// CallFn calls a function value (a closure or a function pointer) with args.
// Arrays and maps among args are passed as copies, as vSL's value semantics
// require: the callee cannot change the caller's data. Each call costs one operation of the run's budget, so that builtins which
// call closures in a loop (map, filter, sort, ...) stay bounded even when the
// closures themselves do no counted work.
func (c *Call) CallFn(fn Value, args ...Value) (Value, error) {
	th := c.th
	if th == nil {
		return Value{}, errors.New("cannot call a function outside a script run")
	}
	th.ops--
	if th.ops < 0 {
		var src []byte
		if th.nframes > 0 {
			src = th.frames[th.nframes-1].mod.code.src
		}
		if err := th.refill(src, c.pos); err != nil {
			return Value{}, err
		}
	}
	return th.callValue(fn, args, c.pos, true)
}

// Env holds what scripts can see beyond their own definitions: builtin
// functions, host constants, the module loader, and the hooks through which
// the mail layer gives meaning to directives and v1 declarations. An Env is
// set up once and must not change after the first Compile that uses it.
type Env struct {
	funcs  map[string]*Builtin
	consts map[string]Value

	// Loader reads an imported module. path is the string of the import
	// statement and from the path of the importing file. It returns the
	// module's canonical path (used to share one instance per path and to
	// detect cycles) and its source. Without a Loader, imports are an error.
	Loader func(path, from string) (canonical string, src []byte, err error)

	// Directive builds the value of a `rule`/`action`/`delegate`
	// expression when it is evaluated. Without it, directives are an error.
	Directive func(d *Directive) (Value, error)

	// Declare builds the value of a v1 `object`/`service` declaration.
	// Without it, such declarations are an error.
	Declare func(d *Declaration) (Value, error)
}

// Directive describes an evaluated directive expression for Env.Directive.
type Directive struct {
	Kind    string // "rule", "action" or "delegate"
	Name    string
	Service Value // the service of a delegate, else ()
	Body    Value // usually a function value; may be a map #{evaluate: ...}
	Pos     syntax.Position
	NamePos syntax.Position
}

// Declaration describes an evaluated v1 declaration for Env.Declare.
type Declaration struct {
	Service bool // service (true) or object (false)
	Name    string
	Type    string // e.g. "ip4", "file:fqdn", "db:csv"
	Value   Value
	Pos     syntax.Position
	TypePos syntax.Position
	File    string // the declaring file, to resolve relative paths
}

// NewEnv returns an Env holding the Rhai standard library.
func NewEnv() *Env {
	e := &Env{funcs: make(map[string]*Builtin), consts: make(map[string]Value)}
	registerStdlib(e)
	return e
}

// Define adds a builtin. Builtins are overloaded by the kinds of their
// arguments, as Rhai's functions are: when a builtin of the same name
// exists, the new one is tried first and the earlier one runs when the new
// one returns ErrNoMatch. So a host function "contains" for host values
// keeps the standard library's contains for strings, arrays and maps.
func (e *Env) Define(b *Builtin) {
	if old := e.funcs[b.Name]; old != nil {
		b = overload(b, old)
	}
	e.funcs[b.Name] = b
}

// overload combines two builtins of one name: first is tried before then.
func overload(first, then *Builtin) *Builtin {
	f1, f2 := first.Fn, then.Fn
	b := &Builtin{
		Name: first.Name,
		Fn: func(c *Call, args []Value) (Value, error) {
			v, err := f1(c, args)
			if err == ErrNoMatch {
				return f2(c, args)
			}
			return v, err
		},
		Mutates: first.Mutates || then.Mutates,
		Pure:    first.Pure && then.Pure,
	}
	if b.Mutates && (first.InPlace != nil || then.InPlace != nil || !first.Mutates || !then.Mutates) {
		// Which receivers a call changes depends on which overload takes
		// it: be conservative and say a receiver may change when any
		// overload may change it.
		b.InPlace = func(recv Value) bool { return changes(first, recv) || changes(then, recv) }
	}
	return b
}

// changes reports whether a call of b may change a receiver recv.
func changes(b *Builtin, recv Value) bool {
	if b.mutKinds != nil {
		return recv.kind < kindCell && b.mutKinds[recv.kind]
	}
	return b.Mutates && (b.InPlace == nil || b.InPlace(recv))
}

// DefineFunc is shorthand for Define(&Builtin{Name: name, Fn: fn}).
func (e *Env) DefineFunc(name string, fn func(c *Call, args []Value) (Value, error)) {
	e.Define(&Builtin{Name: name, Fn: fn})
}

// DefineConst adds a constant visible to every script by name (a name with
// "ns::" is reached as ns::name).
func (e *Env) DefineConst(name string, v Value) { e.consts[name] = v }

// Lookup returns the builtin named name, or nil.
func (e *Env) Lookup(name string) *Builtin { return e.funcs[name] }

// Const returns the constant named name.
func (e *Env) Const(name string) (Value, bool) {
	v, ok := e.consts[name]
	return v, ok
}

// FuncNames returns the names of every builtin, sorted.
func (e *Env) FuncNames() []string {
	names := make([]string, 0, len(e.funcs))
	for n := range e.funcs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// signature renders name(type, type) for "function not found" errors.
func signature(name string, args []Value) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('(')
	for i, a := range args {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.TypeName())
	}
	b.WriteByte(')')
	return b.String()
}

func sortStrings(s []string) { sort.Strings(s) }
