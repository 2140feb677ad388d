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
	// back into it after the call, and refuses the call on a constant.
	Mutates bool
	// Pure says the builtin has no effects and depends only on its
	// arguments, so calls with constant arguments may be folded at compile
	// time.
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

// CheckSize returns an error when a string, array or map of n elements would
// exceed the thread's size limits. Builtins that build a value whose size is
// chosen by an argument (pad, repeat, splitting into many parts) call it
// before allocating.
func (c *Call) CheckSize(n int) error {
	lim := DefaultLimits()
	if c.th != nil {
		lim = c.th.limits
	}
	m := lim.MaxStringSize
	if lim.MaxArraySize > m {
		m = lim.MaxArraySize
	}
	if m > 0 && n > m {
		return fmt.Errorf("size %d exceeds the limit of %d", n, m)
	}
	return nil
}

// CallFn calls a function value (a closure or a function pointer) with args.
func (c *Call) CallFn(fn Value, args ...Value) (Value, error) {
	if c.th == nil {
		return Value{}, errors.New("cannot call a function outside a script run")
	}
	return c.th.callValue(fn, args, c.pos)
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

// Define adds or replaces a builtin.
func (e *Env) Define(b *Builtin) { e.funcs[b.Name] = b }

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
