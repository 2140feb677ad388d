package vsl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// binding is a variable or constant known to the compiler.
type binding struct {
	name    string
	decl    *syntax.Ident
	slot    int
	isConst bool
	cell    bool // captured by a closure: the slot holds a *cell
	top     bool // declared at the top level of a module body
	export  bool
	owner   *fnState
}

// freeVar is a variable a closure captured: where the closure's creator
// finds its cell.
type freeVar struct {
	b         *binding
	fromLocal bool // the creator's own local slot (else the creator's free var idx)
	idx       int
}

// fnState is the compiler's view of the function being compiled.
type fnState struct {
	parent  *fnState // the lexically enclosing function of a closure
	closure bool
	module  bool // the module body
	method  bool // a fn declaration (may use `this`)
	scopes  [][]*binding
	nslots  int
	free    []freeVar
	loops   int
}

// compiler compiles one file. Each file is compiled twice: the first pass
// discovers which variables closures capture, the second generates code
// with that knowledge (captured variables live in cells).
type compiler struct {
	env      *Env
	mc       *modCode
	fn       *fnState
	errs     []syntax.Error
	captured map[*syntax.Ident]bool
	final    bool // the second pass: errors count and code is kept
	loader   *loader
}

// loader compiles the modules of one program, once per canonical path.
type loader struct {
	env     *Env
	done    map[string]*modCode
	loading []string
}

// Compile compiles a parsed file and the modules it imports. Errors are
// returned as a *syntax.ErrorList naming file:line:col for each.
func Compile(f *syntax.File, env *Env) (*Program, error) {
	if env == nil {
		env = NewEnv()
	}
	ld := &loader{env: env, done: map[string]*modCode{}}
	mc, err := ld.compile(f)
	if err != nil {
		return nil, err
	}
	return &Program{env: env, main: mc}, nil
}

// Load parses and compiles src as the file path.
func Load(path string, src []byte, env *Env) (*Program, error) {
	f, err := syntax.Parse(path, src)
	if err != nil {
		return nil, err
	}
	return Compile(f, env)
}

// LoadFile reads, parses and compiles the file at path.
func LoadFile(path string, env *Env) (*Program, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading script: %w", err)
	}
	return Load(path, src, env)
}

// FileLoader is an Env.Loader that reads modules from files: the import
// path is relative to the importing file's directory, and ".vsl" is added
// when it has no extension (vSMTP's convention: import "objects" as doe).
func FileLoader(path, from string) (string, []byte, error) {
	p := path
	if filepath.Ext(p) == "" {
		p += ".vsl"
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(from), p)
	}
	p = filepath.Clean(p)
	src, err := os.ReadFile(p)
	if err != nil {
		if os.IsNotExist(err) {
			return "", nil, fmt.Errorf("module %q not found: no such file %s", path, p)
		}
		return "", nil, fmt.Errorf("reading module %q: %w", path, err)
	}
	return p, src, nil
}

func (ld *loader) compile(f *syntax.File) (*modCode, error) {
	ld.loading = append(ld.loading, f.Path)
	defer func() { ld.loading = ld.loading[:len(ld.loading)-1] }()
	first := &compiler{env: ld.env, captured: map[*syntax.Ident]bool{}, loader: ld}
	first.compileFile(f)
	if len(first.errs) > 0 {
		l := &syntax.ErrorList{Errs: first.errs, Src: f.Src}
		l.Sort()
		return nil, l
	}
	second := &compiler{env: ld.env, captured: first.captured, final: true, loader: ld}
	mc := second.compileFile(f)
	if len(second.errs) > 0 {
		l := &syntax.ErrorList{Errs: second.errs, Src: f.Src}
		l.Sort()
		return nil, l
	}
	return mc, nil
}

// importModule compiles the module named by an import statement.
func (c *compiler) importModule(pos syntax.Position, path string) *modCode {
	ld := c.loader
	if ld.env.Loader == nil {
		c.errorf(pos, "cannot import %q: imports are not available here", path)
		return nil
	}
	canon, src, err := ld.env.Loader(path, c.mc.path)
	if err != nil {
		c.errorf(pos, "cannot import %q: %v", path, err)
		return nil
	}
	if mc, ok := ld.done[canon]; ok {
		return mc
	}
	for i, p := range ld.loading {
		if p == canon {
			chain := append(append([]string{}, ld.loading[i:]...), canon)
			c.errorf(pos, "import cycle: %s", strings.Join(chain, " -> "))
			return nil
		}
	}
	f, err := syntax.Parse(canon, src)
	if err != nil {
		c.errorf(pos, "in module imported here:\n%v", err)
		return nil
	}
	mc, err := ld.compile(f)
	if err != nil {
		c.errorf(pos, "in module imported here:\n%v", err)
		return nil
	}
	ld.done[canon] = mc
	return mc
}

func (c *compiler) errorf(pos syntax.Position, format string, args ...any) {
	if len(c.errs) < 50 {
		c.errs = append(c.errs, syntax.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
}

func (c *compiler) compileFile(f *syntax.File) *modCode {
	mc := &modCode{
		file:    f,
		path:    f.Path,
		src:     f.Src,
		globals: map[string]*binding{},
		exports: map[string]*binding{},
		funcs:   map[string][]*funcCode{},
		aliases: map[string]int{},
	}
	c.mc = mc
	c.fn = &fnState{module: true, scopes: [][]*binding{nil}}

	// Functions are hoisted: declare them all before compiling anything.
	var decls []*syntax.FnDecl
	for _, s := range f.Stmts {
		if d, ok := s.(*syntax.FnDecl); ok {
			for _, other := range mc.funcs[d.Name.Name] {
				if other.nparams == len(d.Params) {
					c.errorf(d.Name.Pos, "function '%s' with %d parameter(s) is already defined at %s", d.Name.Name, len(d.Params), other.pos)
				}
			}
			fc := &funcCode{name: d.Name.Name, pos: d.Name.Pos, nparams: len(d.Params), private: d.Private}
			mc.funcs[d.Name.Name] = append(mc.funcs[d.Name.Name], fc)
			decls = append(decls, d)
		}
	}
	body := c.stmts(f.Stmts, true)
	mc.body = body
	mc.nslots = c.fn.nslots
	for _, d := range decls {
		c.compileFn(d, pickOverload(mc.funcs[d.Name.Name], len(d.Params)))
	}
	return mc
}

// compileFn compiles the body of a fn declaration into fc.
func (c *compiler) compileFn(d *syntax.FnDecl, fc *funcCode) {
	saved := c.fn
	c.fn = &fnState{method: true, scopes: [][]*binding{nil}}
	seen := map[string]bool{}
	for i := range d.Params {
		p := &d.Params[i]
		if seen[p.Name] {
			c.errorf(p.Pos, "duplicate parameter '%s'", p.Name)
		}
		seen[p.Name] = true
		b := c.declare(p, false)
		if b.cell {
			fc.cellParams = append(fc.cellParams, b.slot)
		}
	}
	body := c.block(d.Body)
	fc.nslots = c.fn.nslots
	fc.body = body
	c.fn = saved
}

// ---- Scopes ----

func (c *compiler) pushScope() { c.fn.scopes = append(c.fn.scopes, nil) }
func (c *compiler) popScope()  { c.fn.scopes = c.fn.scopes[:len(c.fn.scopes)-1] }

// atTop reports whether the compiler is at the top level of a module body.
func (c *compiler) atTop() bool { return c.fn.module && len(c.fn.scopes) == 1 }

// declare adds a binding for id in the innermost scope; it gets a new slot
// (shadowing keeps the old one intact for closures that captured it).
func (c *compiler) declare(id *syntax.Ident, isConst bool) *binding {
	b := &binding{name: id.Name, decl: id, slot: c.fn.nslots, isConst: isConst, owner: c.fn}
	c.fn.nslots++
	b.top = c.atTop()
	b.cell = !b.top && c.captured[id]
	top := len(c.fn.scopes) - 1
	c.fn.scopes[top] = append(c.fn.scopes[top], b)
	if b.top {
		c.mc.globals[id.Name] = b
	}
	return b
}

// access is how compiled code reaches a variable.
type access struct {
	b    *binding
	kind accessKind
	idx  int // slot, free-variable index or module-global slot
}

type accessKind uint8

const (
	accLocal  accessKind = iota // fr.locals[idx]
	accCell                     // fr.locals[idx] holds a *cell
	accFree                     // fr.fn.cells[idx]
	accGlobal                   // fr.mod.globals[idx] (a module's top-level variable seen from a closure)
)

// resolve finds name in the enclosing scopes, recording captures.
func (c *compiler) resolve(name string) (access, bool) {
	for fs := c.fn; fs != nil; fs = fs.parent {
		for i := len(fs.scopes) - 1; i >= 0; i-- {
			sc := fs.scopes[i]
			for j := len(sc) - 1; j >= 0; j-- {
				b := sc[j]
				if b.name != name {
					continue
				}
				if fs == c.fn {
					if b.cell {
						return access{b, accCell, b.slot}, true
					}
					return access{b, accLocal, b.slot}, true
				}
				if b.top {
					return access{b, accGlobal, b.slot}, true
				}
				c.captured[b.decl] = true
				b.cell = true
				return access{b, accFree, c.capture(c.fn, b)}, true
			}
		}
		if !fs.closure {
			break
		}
	}
	return access{}, false
}

// capture makes b a free variable of fs (and of every closure between fs
// and b's owner) and returns its index in fs.
func (c *compiler) capture(fs *fnState, b *binding) int {
	for i, fv := range fs.free {
		if fv.b == b {
			return i
		}
	}
	var fv freeVar
	if fs.parent == b.owner {
		fv = freeVar{b: b, fromLocal: true, idx: b.slot}
	} else {
		fv = freeVar{b: b, idx: c.capture(fs.parent, b)}
	}
	fs.free = append(fs.free, fv)
	return len(fs.free) - 1
}

// ---- Statements ----

// stmts compiles a statement list into one code whose value is that of the
// last statement when it is an expression without a semicolon.
func (c *compiler) stmts(list []syntax.Stmt, isFile bool) code {
	codes := make([]code, 0, len(list))
	poss := make([]syntax.Position, 0, len(list))
	valueLast := false
	for i, s := range list {
		if _, ok := s.(*syntax.FnDecl); ok {
			if !isFile {
				c.errorf(s.Position(), "functions can only be defined at the top level of a file")
			}
			continue
		}
		sc := c.stmt(s)
		if sc == nil {
			continue
		}
		codes = append(codes, sc)
		poss = append(poss, s.Position())
		if i == len(list)-1 {
			if es, ok := s.(*syntax.ExprStmt); ok && !es.Semi {
				valueLast = true
			}
		}
	}
	switch {
	case len(codes) == 0:
		return func(fr *frame) (Value, error) { return Value{}, nil }
	case len(codes) == 1:
		s, p := codes[0], poss[0]
		if valueLast {
			return func(fr *frame) (Value, error) {
				if err := fr.charge(p); err != nil {
					return Value{}, err
				}
				return s(fr)
			}
		}
		return func(fr *frame) (Value, error) {
			if err := fr.charge(p); err != nil {
				return Value{}, err
			}
			_, err := s(fr)
			return Value{}, err
		}
	}
	last := len(codes) - 1
	return func(fr *frame) (Value, error) {
		for i, s := range codes {
			fr.th.ops--
			if fr.th.ops < 0 {
				if err := fr.th.refill(fr.mod.code.src, poss[i]); err != nil {
					return Value{}, err
				}
			}
			v, err := s(fr)
			if err != nil {
				return Value{}, err
			}
			if i == last && valueLast {
				return v, nil
			}
		}
		return Value{}, nil
	}
}

func (c *compiler) stmt(s syntax.Stmt) code {
	switch s := s.(type) {
	case *syntax.ExprStmt:
		return c.expr(s.X)
	case *syntax.LetStmt:
		return c.letStmt(s)
	case *syntax.AssignStmt:
		return c.assign(s)
	case *syntax.ReturnStmt:
		if s.Value == nil {
			return func(fr *frame) (Value, error) { fr.ret = Value{}; return Value{}, errReturn }
		}
		val := c.valueExpr(s.Value)
		return func(fr *frame) (Value, error) {
			v, err := val(fr)
			if err != nil {
				return Value{}, err
			}
			fr.ret = v
			return Value{}, errReturn
		}
	case *syntax.BreakStmt:
		if c.fn.loops == 0 {
			c.errorf(s.Pos, "'break' outside of a loop")
		}
		if s.Value == nil {
			return func(fr *frame) (Value, error) { fr.ret = Value{}; return Value{}, errBreak }
		}
		val := c.valueExpr(s.Value)
		return func(fr *frame) (Value, error) {
			v, err := val(fr)
			if err != nil {
				return Value{}, err
			}
			fr.ret = v
			return Value{}, errBreak
		}
	case *syntax.ContinueStmt:
		if c.fn.loops == 0 {
			c.errorf(s.Pos, "'continue' outside of a loop")
		}
		return func(fr *frame) (Value, error) { return Value{}, errContinue }
	case *syntax.ThrowStmt:
		var val code
		if s.Value != nil {
			val = c.valueExpr(s.Value)
		}
		pos := s.Pos
		return func(fr *frame) (Value, error) {
			var v Value
			if val != nil {
				var err error
				if v, err = val(fr); err != nil {
					return Value{}, err
				}
			}
			return Value{}, &EvalError{Pos: pos, Msg: ToString(v), Thrown: &v, src: fr.mod.code.src}
		}
	case *syntax.ImportStmt:
		return c.importStmt(s)
	case *syntax.ExportStmt:
		if !c.atTop() {
			c.errorf(s.Pos, "export is only allowed at the top level of a file")
			return nil
		}
		a, ok := c.resolve(s.Name.Name)
		if !ok {
			c.errorf(s.Name.Pos, "undefined variable '%s'", s.Name.Name)
			return nil
		}
		name := s.Name.Name
		if s.Alias != nil {
			name = s.Alias.Name
		}
		c.mc.exports[name] = a.b
		return nil
	case *syntax.ObjectDecl:
		return c.declaration(s.Pos, false, &s.Name, s.Type, s.TypePos, s.Value)
	case *syntax.ServiceDecl:
		return c.declaration(s.Pos, true, &s.Name, s.Type, s.TypePos, s.Value)
	case *syntax.FnDecl:
		c.errorf(s.Pos, "functions can only be defined at the top level of a file")
		return nil
	}
	c.errorf(s.Position(), "unsupported statement %T", s)
	return nil
}

func (c *compiler) letStmt(s *syntax.LetStmt) code {
	if s.Export && !c.atTop() {
		c.errorf(s.Pos, "export is only allowed at the top level of a file")
	}
	var val code
	if s.Value != nil {
		val = c.valueExpr(s.Value)
	}
	// Declared after compiling the value: `let x = x + 1` reads the outer x.
	b := c.declare(&s.Name, s.Const)
	if s.Export {
		c.mc.exports[s.Name.Name] = b
	}
	slot := b.slot
	if b.cell {
		return func(fr *frame) (Value, error) {
			var v Value
			if val != nil {
				var err error
				if v, err = val(fr); err != nil {
					return Value{}, err
				}
			}
			fr.locals[slot] = cellValue(&cell{v: v})
			return Value{}, nil
		}
	}
	if val == nil {
		return func(fr *frame) (Value, error) { fr.locals[slot] = Value{}; return Value{}, nil }
	}
	return func(fr *frame) (Value, error) {
		v, err := val(fr)
		if err != nil {
			return Value{}, err
		}
		fr.locals[slot] = v
		return Value{}, nil
	}
}

// declaration compiles a v1 `object` or `service` statement: a top-level
// constant whose value the Env's Declare hook builds, implicitly exported.
func (c *compiler) declaration(pos syntax.Position, service bool, name *syntax.Ident, typ string, typePos syntax.Position, value syntax.Expr) code {
	what := "object"
	if service {
		what = "service"
	}
	if !c.atTop() {
		c.errorf(pos, "%s declarations are only allowed at the top level of a file", what)
	}
	val := c.valueExpr(value)
	b := c.declare(name, true)
	b.export = true
	c.mc.exports[name.Name] = b
	slot := b.slot
	decl := c.env.Declare
	if decl == nil {
		c.errorf(pos, "%s declarations are only available in rule files", what)
		return nil
	}
	file := c.mc.path
	n := name.Name
	return func(fr *frame) (Value, error) {
		v, err := val(fr)
		if err != nil {
			return Value{}, err
		}
		d := &Declaration{Service: service, Name: n, Type: typ, Value: v, Pos: pos, TypePos: typePos, File: file}
		out, err := decl(d)
		if err != nil {
			return Value{}, fr.wrapErr(pos, fmt.Sprintf("%s '%s'", what, n), err)
		}
		fr.locals[slot] = out
		return Value{}, nil
	}
}

func (c *compiler) importStmt(s *syntax.ImportStmt) code {
	if !c.atTop() {
		c.errorf(s.Pos, "import is only allowed at the top level of a file")
		return nil
	}
	lit, ok := s.Path.(*syntax.Literal)
	path, isStr := "", false
	if ok {
		path, isStr = lit.Value.(string)
	}
	if !isStr {
		c.errorf(s.Path.Position(), "the module path of an import must be a string literal")
		return nil
	}
	mc := c.importModule(s.Path.Position(), path)
	if mc == nil {
		return nil
	}
	idx := len(c.mc.imports)
	c.mc.imports = append(c.mc.imports, mc)
	if s.Alias != nil {
		c.mc.aliases[s.Alias.Name] = idx
	}
	pos := s.Pos
	return func(fr *frame) (Value, error) {
		th := fr.th
		inst := th.insts[mc]
		if inst == nil {
			inst = newModule(mc)
			th.insts[mc] = inst
			if _, err := runModule(th, inst); err != nil {
				if ee, ok := err.(*EvalError); ok {
					ee.Stack = append(ee.Stack, pos)
				}
				return Value{}, err
			}
		}
		fr.mod.imports[idx] = inst
		return Value{}, nil
	}
}

// lookupModule returns the import index of alias, or -1.
func (c *compiler) lookupModule(alias string) int {
	if idx, ok := c.mc.aliases[alias]; ok {
		return idx
	}
	return -1
}
