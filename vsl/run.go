package vsl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// code is a compiled expression or statement: every node of the syntax tree
// becomes one Go closure at load time. Statements return ().
type code func(fr *frame) (Value, error)

// frame is the activation of a module body, a script function or a closure.
type frame struct {
	th     *Thread
	locals []Value
	fn     *Func   // the running closure (for its captured cells), or nil
	mod    *module // the module the running code belongs to
	this   *Value  // the receiver of a method call, or nil
	ret    Value   // the value carried by return or break
}

// Control flow travels as sentinel errors: a pointer comparison, no
// allocation.
var (
	errBreak    = &controlError{"break"}
	errContinue = &controlError{"continue"}
	errReturn   = &controlError{"return"}
)

type controlError struct{ what string }

func (e *controlError) Error() string { return e.what + " outside of a loop or function" }

// EvalError is a runtime error: the message, where it happened, and the
// calls that led there.
type EvalError struct {
	Pos syntax.Position
	Msg string
	// Thrown holds the value of a script's `throw` (nil for other errors).
	Thrown *Value
	// Fatal errors (operation budget, cancellation, call depth, internal
	// errors) cannot be caught by try/catch.
	Fatal bool
	// Stack lists the positions of the calls that led to Pos, innermost first.
	Stack []syntax.Position
	// Cause is the Go error a builtin returned, if any.
	Cause error
	src   []byte
}

// Error renders "file:line:col: message".
func (e *EvalError) Error() string { return e.Pos.String() + ": " + e.Msg }

// Unwrap returns the builtin's error.
func (e *EvalError) Unwrap() error { return e.Cause }

// Detailed renders the error with its source line, a caret under the column,
// and the calls that led there.
func (e *EvalError) Detailed() string {
	var b strings.Builder
	b.WriteString(e.Error())
	if s := syntax.Snippet(e.src, e.Pos); s != "" {
		b.WriteByte('\n')
		b.WriteString(s)
	}
	for _, p := range e.Stack {
		b.WriteString("\n  called from ")
		b.WriteString(p.String())
	}
	return b.String()
}

// errorf makes a runtime error at pos.
func (fr *frame) errorf(pos syntax.Position, format string, args ...any) error {
	return &EvalError{Pos: pos, Msg: fmt.Sprintf(format, args...), src: fr.mod.code.src}
}

// fatalf makes an uncatchable runtime error at pos.
func (fr *frame) fatalf(pos syntax.Position, format string, args ...any) error {
	return &EvalError{Pos: pos, Msg: fmt.Sprintf(format, args...), Fatal: true, src: fr.mod.code.src}
}

// wrapErr turns an error from a builtin into a runtime error at pos, leaving
// runtime errors and control flow untouched.
func (fr *frame) wrapErr(pos syntax.Position, prefix string, err error) error {
	if _, ok := err.(*controlError); ok {
		return err
	}
	var ee *EvalError
	if errors.As(err, &ee) {
		return err
	}
	msg := err.Error()
	if prefix != "" {
		msg = prefix + ": " + msg
	}
	return &EvalError{Pos: pos, Msg: msg, Cause: err, src: fr.mod.code.src}
}

// charge counts one operation against the budget. It is small enough to be
// inlined into every statement, loop iteration and call.
func (fr *frame) charge(pos syntax.Position) error {
	fr.th.ops--
	if fr.th.ops < 0 {
		return fr.th.refill(fr.mod.code.src, pos)
	}
	return nil
}

// refill closes the current window of operations, looks at the context and
// the budget, and opens the next window. src is the source of the running
// file, for the error's snippet.
func (th *Thread) refill(src []byte, pos syntax.Position) error {
	th.used += th.win
	th.win, th.ops = 0, 0
	if err := th.ctx.Err(); err != nil {
		return &EvalError{Pos: pos, Msg: "script cancelled: " + err.Error(), Fatal: true, Cause: err, src: src}
	}
	w := th.window()
	if w <= 0 {
		return &EvalError{Pos: pos, Fatal: true, src: src,
			Msg: fmt.Sprintf("too many operations: the budget of %d operations is exhausted", th.limits.MaxOperations)}
	}
	th.win = w
	th.ops = w - 1
	return nil
}

// pushFrame returns a cleared frame from the thread's pool.
func (th *Thread) pushFrame() *frame {
	if th.nframes == len(th.frames) {
		th.frames = append(th.frames, new(frame))
	}
	fr := th.frames[th.nframes]
	th.nframes++
	*fr = frame{th: th}
	return fr
}

func (th *Thread) popFrame() {
	th.nframes--
	th.frames[th.nframes].locals = nil
}

// reserve grows the value stack by n cleared slots and returns the base.
func (th *Thread) reserve(n int) int {
	base := len(th.stack)
	if base+n > cap(th.stack) {
		ns := make([]Value, base, 2*cap(th.stack)+n)
		copy(ns, th.stack)
		th.stack = ns
	}
	th.stack = th.stack[:base+n]
	clear(th.stack[base:])
	return base
}

// enter runs fc with its arguments already in th.stack[base:base+nparams].
func (th *Thread) enter(fc *funcCode, f *Func, mod *module, base int, this *Value, pos syntax.Position) (Value, error) {
	if th.depth >= th.limits.MaxCallDepth && th.limits.MaxCallDepth > 0 {
		th.stack = th.stack[:base]
		return Value{}, &EvalError{Pos: pos, Fatal: true, src: mod.code.src,
			Msg: fmt.Sprintf("call depth limit exceeded: more than %d nested calls (runaway recursion?)", th.limits.MaxCallDepth)}
	}
	locals := th.stack[base : base+fc.nslots]
	for _, i := range fc.cellParams {
		locals[i] = cellValue(&cell{v: locals[i]})
	}
	fr := th.pushFrame()
	fr.locals, fr.fn, fr.mod, fr.this = locals, f, mod, this
	th.depth++
	v, err := fc.body(fr)
	th.depth--
	if err != nil {
		if err == errReturn {
			v, err = fr.ret, nil
		} else if ee, ok := err.(*EvalError); ok && len(ee.Stack) < 32 {
			ee.Stack = append(ee.Stack, pos)
		}
	}
	th.popFrame()
	th.stack = th.stack[:base]
	return v, err
}

// beginCall returns a pooled Call record for a builtin call.
func (th *Thread) beginCall(name string, pos syntax.Position) *Call {
	if th.ncalls == len(th.calls) {
		th.calls = append(th.calls, new(Call))
	}
	c := th.calls[th.ncalls]
	th.ncalls++
	c.th, c.name, c.pos = th, name, pos
	return c
}

func (th *Thread) endCall() { th.ncalls-- }

// callValue calls a function value with args. args may alias the stack;
// they are copied before anything else runs. With clone, arrays and maps
// among args are copied deeply (vSL's value semantics) on their way into
// the callee; callers whose args are already private copies pass false.
func (th *Thread) callValue(fnv Value, args []Value, pos syntax.Position, clone bool) (Value, error) {
	f := fnv.AsFn()
	if f == nil {
		return Value{}, fmt.Errorf("a value of type %s is not a function", fnv.TypeName())
	}
	n := len(f.curried) + len(args)
	if f.builtin != nil {
		base := th.reserve(n)
		copy(th.stack[base:], f.curried)
		copy(th.stack[base+len(f.curried):], args)
		if clone {
			cloneAll(th.stack[base : base+n])
		}
		c := th.beginCall(f.builtin.Name, pos)
		v, err := callBuiltin(f.builtin, c, th.stack[base:base+n])
		th.endCall()
		if err == ErrNoMatch {
			err = fmt.Errorf("function not found: %s", signature(f.builtin.Name, th.stack[base:base+n]))
		}
		th.stack = th.stack[:base]
		return v, err
	}
	fc := f.code
	if fc == nil {
		fc = pickOverload(f.overloads, n)
		if fc == nil {
			return Value{}, fmt.Errorf("function not found: %s with %d argument(s)", f.name, n)
		}
	}
	if fc.nparams != n {
		return Value{}, fmt.Errorf("%s expects %d argument(s), got %d", f.String(), fc.nparams, n)
	}
	base := th.reserve(fc.nslots)
	copy(th.stack[base:], f.curried)
	copy(th.stack[base+len(f.curried):], args)
	if clone {
		cloneAll(th.stack[base : base+n])
	}
	return th.enter(fc, f, f.mod, base, nil, pos)
}

// cloneAll replaces the arrays and maps of vs by deep copies.
func cloneAll(vs []Value) {
	for i, v := range vs {
		if v.kind == KindArray || v.kind == KindMap {
			vs[i] = v.Clone()
		}
	}
}

func pickOverload(fcs []*funcCode, n int) *funcCode {
	for _, fc := range fcs {
		if fc.nparams == n {
			return fc
		}
	}
	return nil
}

// callBuiltin runs a builtin, turning a panic into an error.
func callBuiltin(b *Builtin, c *Call, args []Value) (v Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = Value{}, fmt.Errorf("internal error in %s: %v", b.Name, r)
		}
	}()
	return b.Fn(c, args)
}

// Program is a compiled script: its entry file and the modules it imports.
// Compile it once; Run it once to evaluate its top level, then call the
// function values it produced (rules, callbacks) with Call as often as
// needed, from any number of goroutines, each with its own Thread.
type Program struct {
	env  *Env
	main *modCode
	inst *module // the main module's instance after Run
}

// modCode is a compiled file.
type modCode struct {
	path    string
	src     []byte
	file    *syntax.File // the parsed file, for Program.Files
	body    code
	nslots  int
	globals map[string]*binding    // top-level bindings by name
	exports map[string]*binding    // exported (and, for v1 declarations, implicit) names
	funcs   map[string][]*funcCode // functions by name, one per arity
	imports []*modCode             // by import statement index
	aliases map[string]int         // import alias -> index in imports
}

// module is a running instance of a compiled file.
type module struct {
	code    *modCode
	globals []Value
	imports []*module
	frozen  bool
}

// Env returns the environment the program was compiled in.
func (p *Program) Env() *Env { return p.env }

// Path returns the path of the program's entry file.
func (p *Program) Path() string { return p.main.path }

// Files returns the syntax trees of the program's files: the entry file
// first, then every module it imports, directly or not, each once, in the
// order of their first import. Tools analyse them; they must not change
// them.
func (p *Program) Files() []*syntax.File {
	var out []*syntax.File
	seen := map[*modCode]bool{}
	var walk func(mc *modCode)
	walk = func(mc *modCode) {
		if mc == nil || seen[mc] {
			return
		}
		seen[mc] = true
		out = append(out, mc.file)
		for _, imp := range mc.imports {
			walk(imp)
		}
	}
	walk(p.main)
	return out
}

// Run evaluates the program's top level on th and returns the value of its
// last expression (or of a top-level `return`). Afterwards the top-level
// variables of every file are frozen: functions and closures called later
// may read them but not change them, so that one Program can serve
// concurrent runs.
func (p *Program) Run(th *Thread) (v Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = Value{}, &EvalError{Pos: syntax.Position{File: p.main.path}, Msg: fmt.Sprintf("internal error: %v", r), Fatal: true}
		}
	}()
	th.insts = map[*modCode]*module{}
	defer func() { th.insts = nil }()
	m := newModule(p.main)
	th.insts[p.main] = m
	p.inst = m
	v, err = runModule(th, m)
	for _, mi := range th.insts {
		mi.frozen = true
	}
	return v, err
}

func newModule(mc *modCode) *module {
	return &module{code: mc, globals: make([]Value, mc.nslots), imports: make([]*module, len(mc.imports))}
}

func runModule(th *Thread, m *module) (Value, error) {
	fr := th.pushFrame()
	fr.locals, fr.mod = m.globals, m
	v, err := m.code.body(fr)
	if err == errReturn {
		v, err = fr.ret, nil
	}
	th.popFrame()
	return v, err
}

// Call calls a function value (a closure or function pointer the program
// produced, e.g. a rule's body) on th with args. Reset th first to give the
// call a fresh budget and context.
func (p *Program) Call(th *Thread, fn Value, args ...Value) (v Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = Value{}, &EvalError{Pos: syntax.Position{File: p.main.path}, Msg: fmt.Sprintf("internal error: %v", r), Fatal: true}
		}
	}()
	f := fn.AsFn()
	var pos syntax.Position
	if f != nil && f.code != nil {
		pos = f.code.pos
	}
	v, err = th.callValue(fn, args, pos, false)
	if err != nil {
		if _, ok := err.(*EvalError); !ok {
			err = &EvalError{Pos: pos, Msg: err.Error(), Cause: err}
		}
	}
	return v, err
}

// Global returns the value of a top-level variable, constant or v1
// declaration of the entry file after Run.
func (p *Program) Global(name string) (Value, bool) {
	if p.inst == nil {
		return Value{}, false
	}
	b, ok := p.main.globals[name]
	if !ok {
		return Value{}, false
	}
	return p.inst.globals[b.slot], true
}

// cellValue wraps a captured variable's cell in a Value for its slot.
func cellValue(c *cell) Value { return Value{kind: kindCell, p: ptr(c)} }
