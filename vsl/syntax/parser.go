package syntax

import (
	"fmt"
	"math"
)

// maxErrors bounds the errors reported for one file.
const maxErrors = 20

// Parse parses a vSL source file. On errors it returns the partial File and
// an *ErrorList holding every error found (the parser recovers at statement
// boundaries), sorted by position.
func Parse(path string, src []byte) (*File, error) {
	p := newParser(path, src, newScanner(path, src))
	f := &File{Path: path, Src: src}
	f.Stmts = p.stmtList(EOF)
	if len(p.errs) > 0 {
		l := &ErrorList{Errs: p.errs, Src: src}
		l.Sort()
		if len(l.Errs) > maxErrors {
			l.Errs = l.Errs[:maxErrors]
		}
		return f, l
	}
	return f, nil
}

// parser is a recursive-descent parser over the tokens of one file.
type parser struct {
	file string
	src  []byte
	toks []token
	i    int
	tok  token // toks[i]
	errs []Error
	// depth bounds the nesting of expressions so that hostile input cannot
	// exhaust the stack.
	depth int
}

// bailout unwinds the parser to the statement loop after an error.
type bailout struct{}

func newParser(file string, src []byte, s *scanner) *parser {
	p := &parser{file: file, src: src}
	for {
		t := s.scan()
		p.toks = append(p.toks, t)
		if t.tok == EOF {
			break
		}
	}
	p.errs = append(p.errs, s.errs...)
	p.tok = p.toks[0]
	return p
}

func (p *parser) advance() {
	if p.i < len(p.toks)-1 {
		p.i++
	}
	p.tok = p.toks[p.i]
}

func (p *parser) peek(k int) token {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k]
	}
	return p.toks[len(p.toks)-1]
}

// describe renders a token for error messages.
func describe(t token) string {
	switch t.tok {
	case IDENT:
		return "identifier '" + t.text + "'"
	case INT, FLOAT:
		return "number " + t.text
	case STRING:
		return "string " + t.text
	case CHAR:
		return "character " + t.text
	case BACKTICK:
		return "template string"
	case EOF:
		if t.text != "" {
			return t.text
		}
		return "end of file"
	case ILLEGAL:
		return fmt.Sprintf("illegal character %q", t.text)
	}
	return "'" + t.tok.String() + "'"
}

func (p *parser) errorAt(pos Position, format string, args ...any) {
	if len(p.errs) < maxErrors*2 {
		p.errs = append(p.errs, Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
}

// fail records an error and unwinds to the enclosing statement.
func (p *parser) fail(pos Position, format string, args ...any) {
	p.errorAt(pos, format, args...)
	panic(bailout{})
}

func (p *parser) expect(t Token, what string) token {
	if p.tok.tok != t {
		p.fail(p.tok.pos, "expected %s, found %s", what, describe(p.tok))
	}
	tk := p.tok
	p.advance()
	return tk
}

func (p *parser) got(t Token) bool {
	if p.tok.tok == t {
		p.advance()
		return true
	}
	return false
}

// sync skips to the end of the current statement after an error: past the
// next ';' at this nesting level, or up to a '}' that closes it.
func (p *parser) sync() {
	depth := 0
	for p.tok.tok != EOF {
		switch p.tok.tok {
		case LBRACE, MAPSTART, LPAREN, LBRACK:
			depth++
		case RBRACE, RPAREN, RBRACK:
			if depth == 0 {
				if p.tok.tok != RBRACE {
					p.advance()
				}
				return
			}
			depth--
		case SEMI:
			if depth == 0 {
				p.advance()
				return
			}
		}
		p.advance()
	}
}

// stmtList parses statements up to (not including) end.
func (p *parser) stmtList(end Token) []Stmt {
	var list []Stmt
	for p.tok.tok != end && p.tok.tok != EOF {
		if len(p.errs) >= maxErrors*2 {
			return list
		}
		if p.tok.tok == SEMI {
			p.advance()
			continue
		}
		if s := p.stmtRecover(end); s != nil {
			list = append(list, s)
		}
	}
	return list
}

func (p *parser) stmtRecover(end Token) (s Stmt) {
	start := p.i
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(bailout); !ok {
				panic(r)
			}
			s = nil
			p.sync()
			if p.i == start && p.tok.tok != EOF && p.tok.tok != end {
				p.advance()
			}
		}
	}()
	return p.stmt(end)
}

func isBlockLike(e Expr) bool {
	switch e.(type) {
	case *IfExpr, *SwitchExpr, *WhileExpr, *LoopExpr, *DoExpr, *ForExpr, *TryExpr, *BlockExpr:
		return true
	}
	return false
}

// endStmt consumes the ';' that ends a statement, or accepts its absence
// before end or when the statement ended with a block.
func (p *parser) endStmt(end Token, blockLike bool) bool {
	if p.got(SEMI) {
		return true
	}
	if blockLike || p.tok.tok == end || p.tok.tok == EOF {
		return false
	}
	p.fail(p.tok.pos, "expected ';' after statement, found %s", describe(p.tok))
	return false
}

func (p *parser) stmt(end Token) Stmt {
	t := p.tok
	switch t.tok {
	case LET, CONST:
		s := p.letStmt(false)
		p.endStmt(end, false)
		return s
	case EXPORT:
		p.advance()
		if p.tok.tok == LET || p.tok.tok == CONST {
			s := p.letStmt(true)
			p.endStmt(end, false)
			return s
		}
		name := p.ident("variable name")
		s := &ExportStmt{Pos: t.pos, Name: name}
		if p.got(AS) {
			alias := p.ident("export name")
			s.Alias = &alias
		}
		p.endStmt(end, false)
		return s
	case FN, PRIVATE:
		return p.fnDecl()
	case IMPORT:
		p.advance()
		s := &ImportStmt{Pos: t.pos, Path: p.expr()}
		if p.got(AS) {
			alias := p.ident("module alias")
			s.Alias = &alias
		}
		p.endStmt(end, false)
		return s
	case RETURN, BREAK, THROW:
		p.advance()
		var val Expr
		if p.tok.tok != SEMI && p.tok.tok != end && p.tok.tok != EOF && p.tok.tok != RBRACE {
			val = p.expr()
		}
		p.endStmt(end, false)
		switch t.tok {
		case RETURN:
			return &ReturnStmt{Pos: t.pos, Value: val}
		case BREAK:
			return &BreakStmt{Pos: t.pos, Value: val}
		}
		return &ThrowStmt{Pos: t.pos, Value: val}
	case CONTINUE:
		p.advance()
		p.endStmt(end, false)
		return &ContinueStmt{Pos: t.pos}
	case IDENT:
		if (t.text == "object" || t.text == "service") && p.peek(1).tok == IDENT && p.peek(2).tok == IDENT {
			return p.declaration(end)
		}
	}
	var x Expr
	switch t.tok {
	case IF, SWITCH, WHILE, LOOP, DO, FOR, TRY:
		// As in Rhai, a statement that starts with a block-like expression
		// ends with its block: `for x in a { } |y| y + 1` is two
		// statements, not a bitwise or. Method calls on it still bind.
		x = p.unary()
	default:
		x = p.expr()
	}
	if op := p.tok.tok; op == ASSIGN || isCompound(op) {
		pos := p.tok.pos
		switch x.(type) {
		case *IdentExpr, *IndexExpr, *DotExpr, *PathExpr, *ThisExpr:
		default:
			p.fail(pos, "the left side of '%s' cannot be assigned to", op)
		}
		p.advance()
		s := &AssignStmt{Pos: pos, Op: op, LHS: x, RHS: p.expr()}
		p.endStmt(end, false)
		return s
	}
	s := &ExprStmt{X: x}
	s.Semi = p.endStmt(end, isBlockLike(x))
	return s
}

func isCompound(t Token) bool {
	_, ok := t.CompoundOp()
	return ok
}

// ident parses a name, refusing reserved words with a clear message.
func (p *parser) ident(what string) Ident {
	t := p.tok
	if t.tok == IDENT {
		p.advance()
		return Ident{Pos: t.pos, Name: t.text}
	}
	if _, kw := Keywords[t.tok.String()]; kw && t.tok >= IN {
		p.fail(t.pos, "'%s' is a reserved keyword and cannot be used as a %s", t.tok, what)
	}
	p.fail(t.pos, "expected %s, found %s", what, describe(t))
	return Ident{}
}

func (p *parser) letStmt(export bool) Stmt {
	t := p.tok
	p.advance()
	s := &LetStmt{Pos: t.pos, Const: t.tok == CONST, Export: export}
	s.Name = p.ident("variable name")
	if p.got(ASSIGN) {
		s.Value = p.expr()
	} else if s.Const {
		p.fail(p.tok.pos, "expected '=' and a value for constant '%s', found %s", s.Name.Name, describe(p.tok))
	}
	return s
}

func (p *parser) fnDecl() Stmt {
	d := &FnDecl{Pos: p.tok.pos}
	if p.got(PRIVATE) {
		d.Private = true
	}
	p.expect(FN, "'fn'")
	d.Name = p.ident("function name")
	p.expect(LPAREN, "'(' after the function name")
	for p.tok.tok != RPAREN {
		d.Params = append(d.Params, p.ident("parameter name"))
		if !p.got(COMMA) {
			break
		}
	}
	p.expect(RPAREN, "')' to close the parameter list")
	d.Body = p.block()
	return d
}

// declaration parses `object NAME TYPE = value;` or `service NAME TYPE = value;`.
func (p *parser) declaration(end Token) Stmt {
	kw := p.tok
	p.advance()
	name := p.ident(kw.text + " name")
	typPos := p.tok.pos
	typ := p.ident(kw.text + " type").Name
	for p.tok.tok == COLON {
		p.advance()
		typ += ":" + p.ident(kw.text+" type").Name
	}
	p.expect(ASSIGN, "'=' after the "+kw.text+" type")
	val := p.expr()
	p.endStmt(end, false)
	if kw.text == "object" {
		return &ObjectDecl{Pos: kw.pos, Name: name, Type: typ, TypePos: typPos, Value: val}
	}
	return &ServiceDecl{Pos: kw.pos, Name: name, Type: typ, TypePos: typPos, Value: val}
}

func (p *parser) block() *BlockExpr {
	open := p.expect(LBRACE, "'{'")
	b := &BlockExpr{Pos: open.pos}
	b.Stmts = p.stmtList(RBRACE)
	if p.tok.tok != RBRACE {
		p.fail(p.tok.pos, "missing '}' to close the block opened at %d:%d", open.pos.Line, open.pos.Col)
	}
	b.End = p.tok.pos
	p.advance()
	return b
}

// ---- Expressions ----

// precedence returns the binding power of a binary operator (0: not one).
func precedence(t Token) int {
	switch t {
	case QQ:
		return 1
	case OROR, PIPE, CARET:
		return 2
	case ANDAND, AMP:
		return 3
	case EQ, NE, IS, NOT:
		return 4
	case IN, NOTIN:
		return 5
	case LT, LE, GT, GE:
		return 6
	case RANGE, RANGEINCL:
		return 7
	case PLUS, MINUS:
		return 8
	case STAR, SLASH, PERCENT:
		return 9
	case POW:
		return 10
	case SHL, SHR:
		return 11
	}
	return 0
}

func (p *parser) expr() Expr { return p.binary(1) }

func (p *parser) binary(min int) Expr {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > 500 {
		p.fail(p.tok.pos, "expression nested too deeply")
	}
	x := p.unary()
	for {
		op := p.tok.tok
		prec := precedence(op)
		if prec < min || prec == 0 {
			return x
		}
		pos := p.tok.pos
		p.advance()
		if op == RANGE || op == RANGEINCL {
			y := p.binary(prec + 1)
			x = &RangeExpr{Pos: pos, Lo: x, Hi: y, Inclusive: op == RANGEINCL}
			if t := p.tok.tok; t == RANGE || t == RANGEINCL {
				p.fail(p.tok.pos, "ranges cannot be chained: use parentheses")
			}
			continue
		}
		next := prec + 1
		if op == POW {
			next = prec // right-associative
		}
		y := p.binary(next)
		x = &BinaryExpr{Pos: pos, Op: op, X: x, Y: y}
	}
}

func (p *parser) unary() Expr {
	t := p.tok
	switch t.tok {
	case MINUS, PLUS, BANG:
		p.advance()
		if t.tok == MINUS && p.tok.tok == INT {
			// Fold -literal so that the smallest i64 can be written.
			lit := p.tok
			p.advance()
			var v int64
			switch x := lit.val.(type) {
			case uint64:
				v = math.MinInt64
			case int64:
				v = -x
			}
			return p.postfix(&Literal{Pos: t.pos, Value: v})
		}
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > 500 {
			p.fail(t.pos, "expression nested too deeply")
		}
		return &UnaryExpr{Pos: t.pos, Op: t.tok, X: p.unary()}
	}
	return p.postfix(p.primary())
}

func (p *parser) postfix(x Expr) Expr {
	for {
		switch p.tok.tok {
		case DOT, QDOT:
			opt := p.tok.tok == QDOT
			p.advance()
			name := p.propName()
			if p.tok.tok == LPAREN {
				args := p.args()
				x = &MethodCallExpr{Pos: name.Pos, Recv: x, Name: name.Name, Args: args, Optional: opt}
			} else {
				x = &DotExpr{Pos: name.Pos, X: x, Name: name.Name, Optional: opt}
			}
		case LBRACK, QBRACK:
			opt := p.tok.tok == QBRACK
			pos := p.tok.pos
			p.advance()
			idx := p.expr()
			p.expect(RBRACK, "']' to close the index")
			x = &IndexExpr{Pos: pos, X: x, Index: idx, Optional: opt}
		case LPAREN:
			p.fail(p.tok.pos, "only a named function can be called this way: call a function value with .call(...)")
		default:
			return x
		}
	}
}

// propName parses a property or method name: an identifier or a keyword.
func (p *parser) propName() Ident {
	t := p.tok
	if t.tok == IDENT || (t.tok >= IN && t.tok <= GLOBAL) {
		p.advance()
		name := t.text
		if t.tok != IDENT {
			name = t.tok.String()
		}
		return Ident{Pos: t.pos, Name: name}
	}
	p.fail(t.pos, "expected a property or method name after '.', found %s", describe(t))
	return Ident{}
}

func (p *parser) args() []Expr {
	open := p.expect(LPAREN, "'('")
	var args []Expr
	for p.tok.tok != RPAREN {
		if p.tok.tok == EOF {
			p.fail(p.tok.pos, "missing ')' to close the argument list opened at %d:%d", open.pos.Line, open.pos.Col)
		}
		args = append(args, p.expr())
		if !p.got(COMMA) {
			break
		}
	}
	p.expect(RPAREN, "',' or ')' in the argument list")
	return args
}

func (p *parser) primary() Expr {
	t := p.tok
	switch t.tok {
	case INT:
		p.advance()
		if _, ok := t.val.(uint64); ok {
			p.errorAt(t.pos, "integer literal %s is out of range for i64", t.text)
			return &Literal{Pos: t.pos, Value: int64(0)}
		}
		return &Literal{Pos: t.pos, Value: t.val}
	case FLOAT, STRING, CHAR:
		p.advance()
		return &Literal{Pos: t.pos, Value: t.val}
	case TRUE, FALSE:
		p.advance()
		return &Literal{Pos: t.pos, Value: t.tok == TRUE}
	case BACKTICK:
		p.advance()
		return p.interp(t)
	case LPAREN:
		p.advance()
		if p.got(RPAREN) {
			return &Literal{Pos: t.pos, Value: nil}
		}
		x := p.expr()
		p.expect(RPAREN, "')'")
		return x
	case IDENT:
		return p.identExpr()
	case THIS:
		p.advance()
		return &ThisExpr{Pos: t.pos}
	case LBRACK:
		p.advance()
		a := &ArrayExpr{Pos: t.pos}
		for p.tok.tok != RBRACK {
			if p.tok.tok == EOF {
				p.fail(p.tok.pos, "missing ']' to close the array opened at %d:%d", t.pos.Line, t.pos.Col)
			}
			a.Elems = append(a.Elems, p.expr())
			if !p.got(COMMA) {
				break
			}
		}
		p.expect(RBRACK, "',' or ']' in the array")
		return a
	case MAPSTART:
		return p.mapLit()
	case PIPE, OROR:
		return p.closure()
	case LBRACE:
		return p.block()
	case IF:
		return p.ifExpr()
	case SWITCH:
		return p.switchExpr()
	case WHILE:
		p.advance()
		return &WhileExpr{Pos: t.pos, Cond: p.expr(), Body: p.block()}
	case LOOP:
		p.advance()
		return &LoopExpr{Pos: t.pos, Body: p.block()}
	case DO:
		p.advance()
		d := &DoExpr{Pos: t.pos, Body: p.block()}
		switch p.tok.tok {
		case WHILE:
		case UNTIL:
			d.Until = true
		default:
			p.fail(p.tok.pos, "expected 'while' or 'until' after the body of 'do', found %s", describe(p.tok))
		}
		p.advance()
		d.Cond = p.expr()
		return d
	case FOR:
		return p.forExpr()
	case TRY:
		return p.tryExpr()
	case FN:
		p.fail(t.pos, "functions can only be defined at the top level of a file; use a closure |x| ... here")
	case EOF:
		p.fail(t.pos, "unexpected %s, expected an expression", describe(t))
	}
	if t.tok >= IN && t.tok <= THIS && t.tok != TRUE && t.tok != FALSE {
		p.fail(t.pos, "unexpected keyword '%s', expected an expression", t.tok)
	}
	p.fail(t.pos, "unexpected %s, expected an expression", describe(t))
	return nil
}

// identExpr parses a name, a path a::b, a call, or a directive.
func (p *parser) identExpr() Expr {
	t := p.tok
	next := p.peek(1)
	switch {
	case (t.text == "rule" || t.text == "action") && next.tok == STRING:
		p.advance()
		name := p.tok
		p.advance()
		kind := RULE
		if t.text == "action" {
			kind = ACTION
		}
		return &DirectiveExpr{Pos: t.pos, Kind: kind, Name: name.val.(string), NamePos: name.pos, Body: p.expr()}
	case t.text == "delegate" && next.tok == IDENT && (p.peek(2).tok == STRING || p.peek(2).tok == DCOLON):
		p.advance()
		svc := p.identOrPath()
		name := p.expect(STRING, "the delegate directive's name (a string)")
		return &DirectiveExpr{Pos: t.pos, Kind: DELEGATE, Service: svc, Name: name.val.(string), NamePos: name.pos, Body: p.expr()}
	}
	x := p.identOrPath()
	if p.tok.tok == LPAREN {
		return &CallExpr{Pos: t.pos, Fn: x, Args: p.args()}
	}
	return x
}

func (p *parser) identOrPath() Expr {
	first := p.ident("name")
	if p.tok.tok != DCOLON {
		return &IdentExpr{Ident: first}
	}
	path := &PathExpr{Pos: first.Pos, Path: []Ident{first}}
	for p.got(DCOLON) {
		path.Path = append(path.Path, p.propName())
	}
	return path
}

func (p *parser) mapLit() Expr {
	open := p.tok
	p.advance()
	m := &MapExpr{Pos: open.pos}
	for p.tok.tok != RBRACE {
		t := p.tok
		var key string
		switch {
		case t.tok == IDENT:
			key = t.text
		case t.tok == STRING:
			key = t.val.(string)
		case t.tok >= IN && t.tok <= GLOBAL:
			key = t.tok.String()
		case t.tok == EOF:
			p.fail(t.pos, "missing '}' to close the map opened at %d:%d", open.pos.Line, open.pos.Col)
		default:
			p.fail(t.pos, "expected a property name in the map, found %s", describe(t))
		}
		p.advance()
		p.expect(COLON, "':' after the property name '"+key+"'")
		m.Entries = append(m.Entries, MapEntry{KeyPos: t.pos, Key: key, Value: p.expr()})
		if !p.got(COMMA) {
			break
		}
	}
	p.expect(RBRACE, "',' or '}' in the map")
	return m
}

func (p *parser) closure() Expr {
	t := p.tok
	c := &ClosureExpr{Pos: t.pos}
	p.advance()
	if t.tok == PIPE {
		for p.tok.tok != PIPE {
			c.Params = append(c.Params, p.ident("parameter name"))
			if !p.got(COMMA) {
				break
			}
		}
		p.expect(PIPE, "'|' to close the parameter list")
	}
	c.Body = p.expr()
	if op := p.tok.tok; op == ASSIGN || isCompound(op) {
		// `|| x += 1`: an assignment as the body, as Rhai allows.
		pos := p.tok.pos
		p.advance()
		as := &AssignStmt{Pos: pos, Op: op, LHS: c.Body, RHS: p.expr()}
		c.Body = &BlockExpr{Pos: c.Body.Position(), Stmts: []Stmt{as}, End: pos}
	}
	return c
}

func (p *parser) ifExpr() Expr {
	t := p.tok
	p.advance()
	e := &IfExpr{Pos: t.pos, Cond: p.expr(), Then: p.block()}
	if p.got(ELSE) {
		if p.tok.tok == IF {
			e.Else = p.ifExpr()
		} else {
			e.Else = p.block()
		}
	}
	return e
}

func (p *parser) switchExpr() Expr {
	t := p.tok
	p.advance()
	s := &SwitchExpr{Pos: t.pos, X: p.expr()}
	open := p.expect(LBRACE, "'{' to open the switch arms")
	for p.tok.tok != RBRACE {
		if p.tok.tok == EOF {
			p.fail(p.tok.pos, "missing '}' to close the switch opened at %d:%d", open.pos.Line, open.pos.Col)
		}
		c := SwitchCase{Pos: p.tok.pos}
		if p.tok.tok == IDENT && p.tok.text == "_" {
			p.advance()
		} else {
			c.Values = append(c.Values, p.binary(3))
			for p.got(PIPE) {
				c.Values = append(c.Values, p.binary(3))
			}
		}
		if p.got(IF) {
			c.Cond = p.expr()
		}
		p.expect(ARROW, "'=>' after the switch case")
		c.Body = p.expr()
		s.Cases = append(s.Cases, c)
		if !p.got(COMMA) {
			if _, ok := c.Body.(*BlockExpr); !ok && p.tok.tok != RBRACE {
				p.fail(p.tok.pos, "expected ',' or '}' after the switch arm, found %s", describe(p.tok))
			}
		}
	}
	p.advance()
	return s
}

func (p *parser) forExpr() Expr {
	t := p.tok
	p.advance()
	f := &ForExpr{Pos: t.pos}
	if p.got(LPAREN) {
		f.Var = p.ident("loop variable name")
		p.expect(COMMA, "',' between the loop variable and the index variable")
		idx := p.ident("index variable name")
		f.Index = &idx
		p.expect(RPAREN, "')'")
	} else {
		f.Var = p.ident("loop variable name")
	}
	p.expect(IN, "'in' after the loop variable")
	f.Iter = p.expr()
	f.Body = p.block()
	return f
}

func (p *parser) tryExpr() Expr {
	t := p.tok
	p.advance()
	e := &TryExpr{Pos: t.pos, Body: p.block()}
	p.expect(CATCH, "'catch' after the body of 'try'")
	if p.got(LPAREN) {
		v := p.ident("error variable name")
		e.ErrVar = &v
		p.expect(RPAREN, "')'")
	}
	e.Catch = p.block()
	return e
}

// interp parses the parts of a back-tick string.
func (p *parser) interp(t token) Expr {
	parts, _ := t.val.([]interpPart)
	s := &InterpString{Pos: t.pos}
	for _, part := range parts {
		if !part.expr {
			if part.text != "" || len(parts) == 1 {
				s.Parts = append(s.Parts, &Literal{Pos: part.pos, Value: part.text})
			}
			continue
		}
		end := part.off + len(part.text)
		sc := &scanner{src: p.src[:end], file: p.file, off: part.off, line: part.pos.Line, col: part.pos.Col, endText: "'}' closing ${"}
		sub := newParser(p.file, p.src, sc)
		sub.depth = p.depth
		if x := sub.interpBlock(part); x != nil {
			s.Parts = append(s.Parts, x)
		}
		p.errs = append(p.errs, sub.errs...)
	}
	return s
}

// interpBlock parses the body of one ${...}. As in Rhai, it is a block of
// statements whose value is that of its last expression: a single
// expression stays as it is; anything else becomes a *BlockExpr.
func (p *parser) interpBlock(part interpPart) Expr {
	p.depth++
	if p.depth > 500 {
		p.errorAt(part.pos, "back-tick strings nested too deeply")
		return nil
	}
	if p.tok.tok == EOF {
		p.errorAt(part.pos, "empty ${} in back-tick string")
		return nil
	}
	stmts := p.stmtList(EOF)
	if len(stmts) == 1 {
		if es, ok := stmts[0].(*ExprStmt); ok && !es.Semi {
			return es.X
		}
	}
	end := p.tok.pos // EOF of the sub-scanner: the closing '}'
	return &BlockExpr{Pos: part.pos, Stmts: stmts, End: end}
}
