package syntax

// Node is any node of the syntax tree. Pos is the position of the node's
// first token (for binary expressions: of the operator).
type Node interface {
	Position() Position
}

// Expr is an expression node.
type Expr interface {
	Node
	exprNode()
}

// Stmt is a statement node.
type Stmt interface {
	Node
	stmtNode()
}

// File is a parsed source file.
type File struct {
	Path  string
	Src   []byte // the source text, for error snippets
	Stmts []Stmt
}

// Ident is a name with its position.
type Ident struct {
	Pos  Position
	Name string
}

// ---- Statements ----

// LetStmt is `let x = e;`, `const X = e;` or their `export` forms. Value is
// nil for `let x;` (the variable holds ()).
type LetStmt struct {
	Pos    Position
	Const  bool
	Export bool
	Name   Ident
	Value  Expr
}

// ExprStmt is an expression used as a statement. Semi tells whether a `;`
// followed it: the value of a block is the value of its last statement when
// that is an ExprStmt without a semicolon, and () otherwise.
type ExprStmt struct {
	X    Expr
	Semi bool
}

// AssignStmt is `lhs = rhs` or a compound assignment such as `lhs += rhs`.
// Op is ASSIGN or one of the compound tokens (PLUSEQ, ...). LHS is an Ident,
// an IndexExpr, a DotExpr or a PathExpr (`global::X` is rejected later).
type AssignStmt struct {
	Pos Position // position of the operator
	Op  Token
	LHS Expr
	RHS Expr
}

// FnDecl is `fn name(a, b) { body }`, optionally `private`.
type FnDecl struct {
	Pos     Position
	Private bool
	Name    Ident
	Params  []Ident
	Body    *BlockExpr
}

// ImportStmt is `import "path" as alias;` (Alias nil for a bare import).
type ImportStmt struct {
	Pos   Position
	Path  Expr
	Alias *Ident
}

// ExportStmt is `export name;` or `export name as alias;` for a variable
// already declared.
type ExportStmt struct {
	Pos   Position
	Name  Ident
	Alias *Ident
}

// ReturnStmt is `return;` or `return e;`.
type ReturnStmt struct {
	Pos   Position
	Value Expr // nil for a bare return
}

// BreakStmt is `break;` or `break e;` (a loop's value).
type BreakStmt struct {
	Pos   Position
	Value Expr
}

// ContinueStmt is `continue;`.
type ContinueStmt struct {
	Pos Position
}

// ThrowStmt is `throw e;` (Value nil for a bare `throw;`, which throws ()).
type ThrowStmt struct {
	Pos   Position
	Value Expr
}

// ObjectDecl is the vSL v1 declaration `object NAME TYPE = value;`. Type is
// the type's spelling with its parts joined by ':' (e.g. "ip4", "file:fqdn").
type ObjectDecl struct {
	Pos     Position
	Name    Ident
	Type    string
	TypePos Position
	Value   Expr
}

// ServiceDecl is the vSL v1 declaration `service NAME TYPE = value;`, with
// Type spelled as in ObjectDecl (e.g. "smtp", "db:csv", "cmd").
type ServiceDecl struct {
	Pos     Position
	Name    Ident
	Type    string
	TypePos Position
	Value   Expr
}

// ---- Expressions ----

// IdentExpr is a reference to a variable, constant or function by name.
type IdentExpr struct {
	Ident
}

// PathExpr is a namespaced name: `ns::name`, `global::NAME`, `state::deny`.
// Path holds every segment (at least two).
type PathExpr struct {
	Pos  Position
	Path []Ident
}

// ThisExpr is `this` inside a function called as a method.
type ThisExpr struct {
	Pos Position
}

// Literal is a constant: Value is an int64, float64, string, rune (int32),
// bool, or nil for the unit value `()`.
type Literal struct {
	Pos   Position
	Value any
}

// InterpString is a back-tick string. Parts alternate between *Literal
// (string pieces) and the expressions of `${...}` in source order; empty
// literal pieces are omitted.
type InterpString struct {
	Pos   Position
	Parts []Expr
}

// ArrayExpr is `[a, b, c]`.
type ArrayExpr struct {
	Pos   Position
	Elems []Expr
}

// MapEntry is one `key: value` of a map literal. The key is an identifier or
// a string literal in the source.
type MapEntry struct {
	KeyPos Position
	Key    string
	Value  Expr
}

// MapExpr is `#{ key: value, ... }`.
type MapExpr struct {
	Pos     Position
	Entries []MapEntry
}

// UnaryExpr is `-x`, `+x` or `!x`.
type UnaryExpr struct {
	Pos Position
	Op  Token // MINUS, PLUS, BANG
	X   Expr
}

// BinaryExpr is `x op y`. Op is one of PLUS MINUS STAR SLASH PERCENT POW SHL
// SHR AMP PIPE CARET EQ NE LT LE GT GE ANDAND OROR QQ IN NOTIN IS NOT.
// `a is b` means `a == b` and `a not b` means `a != b` (vSL); `x in c` tests
// membership of x in c. Pos is the operator's position.
type BinaryExpr struct {
	Pos Position
	Op  Token
	X   Expr
	Y   Expr
}

// RangeExpr is `lo..hi` (exclusive) or `lo..=hi` (inclusive).
type RangeExpr struct {
	Pos       Position
	Lo, Hi    Expr
	Inclusive bool
}

// CallExpr is `f(args)` or `ns::f(args)`: Fn is an *IdentExpr or a
// *PathExpr. Any other callee is a parse error (call a function pointer
// with `.call(...)`).
type CallExpr struct {
	Pos  Position // the position of the callee name
	Fn   Expr
	Args []Expr
}

// MethodCallExpr is `recv.name(args)` (or `recv?.name(args)` when Optional).
type MethodCallExpr struct {
	Pos      Position // the position of the method name
	Recv     Expr
	Name     string
	Args     []Expr
	Optional bool
}

// DotExpr is a property access `x.name` (or `x?.name` when Optional).
type DotExpr struct {
	Pos      Position // the position of the property name
	X        Expr
	Name     string
	Optional bool
}

// IndexExpr is `x[i]` (or `x?[i]` when Optional).
type IndexExpr struct {
	Pos      Position // the position of `[`
	X        Expr
	Index    Expr
	Optional bool
}

// ClosureExpr is `|a, b| body` or `|| body`.
type ClosureExpr struct {
	Pos    Position
	Params []Ident
	Body   Expr
}

// BlockExpr is `{ stmts }`. Its value is the value of its last statement
// when that is an ExprStmt without a semicolon, () otherwise.
type BlockExpr struct {
	Pos   Position
	Stmts []Stmt
	End   Position // the closing brace
}

// IfExpr is `if cond { } else if ... else { }`. Else is nil, a *BlockExpr
// or an *IfExpr.
type IfExpr struct {
	Pos  Position
	Cond Expr
	Then *BlockExpr
	Else Expr
}

// SwitchCase is one arm of a switch. Values is empty for the default arm
// `_`; several values are the alternatives `a | b`. A value may be a
// RangeExpr. Cond is the optional `if` guard.
type SwitchCase struct {
	Pos    Position
	Values []Expr
	Cond   Expr
	Body   Expr
}

// SwitchExpr is `switch x { case => body, ... }`.
type SwitchExpr struct {
	Pos   Position
	X     Expr
	Cases []SwitchCase
}

// WhileExpr is `while cond { body }`.
type WhileExpr struct {
	Pos  Position
	Cond Expr
	Body *BlockExpr
}

// LoopExpr is `loop { body }`; its value is the value given to `break`.
type LoopExpr struct {
	Pos  Position
	Body *BlockExpr
}

// DoExpr is `do { body } while cond` or `do { body } until cond`.
type DoExpr struct {
	Pos   Position
	Body  *BlockExpr
	Cond  Expr
	Until bool
}

// ForExpr is `for x in iter { body }` or `for (x, i) in iter { body }`.
type ForExpr struct {
	Pos   Position
	Var   Ident
	Index *Ident
	Iter  Expr
	Body  *BlockExpr
}

// TryExpr is `try { body } catch (err) { handler }`; ErrVar is nil for
// `catch { ... }`.
type TryExpr struct {
	Pos    Position
	Body   *BlockExpr
	ErrVar *Ident
	Catch  *BlockExpr
}

// DirectiveExpr is a vSL directive inside a stage array:
// `rule "name" || body`, `action "name" || body` or
// `delegate service "name" || body`. Body is the expression after the name:
// usually a *ClosureExpr with no parameters, or a map `#{ evaluate: || ... }`.
type DirectiveExpr struct {
	Pos     Position
	Kind    Token // RULE, ACTION or DELEGATE
	Service Expr  // the service for DELEGATE (an *IdentExpr or *PathExpr), else nil
	Name    string
	NamePos Position
	Body    Expr
}

func (n *Ident) Position() Position          { return n.Pos }
func (n *LetStmt) Position() Position        { return n.Pos }
func (n *ExprStmt) Position() Position       { return n.X.Position() }
func (n *AssignStmt) Position() Position     { return n.LHS.Position() }
func (n *FnDecl) Position() Position         { return n.Pos }
func (n *ImportStmt) Position() Position     { return n.Pos }
func (n *ExportStmt) Position() Position     { return n.Pos }
func (n *ReturnStmt) Position() Position     { return n.Pos }
func (n *BreakStmt) Position() Position      { return n.Pos }
func (n *ContinueStmt) Position() Position   { return n.Pos }
func (n *ThrowStmt) Position() Position      { return n.Pos }
func (n *ObjectDecl) Position() Position     { return n.Pos }
func (n *ServiceDecl) Position() Position    { return n.Pos }
func (n *IdentExpr) Position() Position      { return n.Pos }
func (n *PathExpr) Position() Position       { return n.Pos }
func (n *ThisExpr) Position() Position       { return n.Pos }
func (n *Literal) Position() Position        { return n.Pos }
func (n *InterpString) Position() Position   { return n.Pos }
func (n *ArrayExpr) Position() Position      { return n.Pos }
func (n *MapExpr) Position() Position        { return n.Pos }
func (n *UnaryExpr) Position() Position      { return n.Pos }
func (n *BinaryExpr) Position() Position     { return n.Pos }
func (n *RangeExpr) Position() Position      { return n.Pos }
func (n *CallExpr) Position() Position       { return n.Pos }
func (n *MethodCallExpr) Position() Position { return n.Pos }
func (n *DotExpr) Position() Position        { return n.Pos }
func (n *IndexExpr) Position() Position      { return n.Pos }
func (n *ClosureExpr) Position() Position    { return n.Pos }
func (n *BlockExpr) Position() Position      { return n.Pos }
func (n *IfExpr) Position() Position         { return n.Pos }
func (n *SwitchExpr) Position() Position     { return n.Pos }
func (n *WhileExpr) Position() Position      { return n.Pos }
func (n *LoopExpr) Position() Position       { return n.Pos }
func (n *DoExpr) Position() Position         { return n.Pos }
func (n *ForExpr) Position() Position        { return n.Pos }
func (n *TryExpr) Position() Position        { return n.Pos }
func (n *DirectiveExpr) Position() Position  { return n.Pos }

func (*LetStmt) stmtNode()      {}
func (*ExprStmt) stmtNode()     {}
func (*AssignStmt) stmtNode()   {}
func (*FnDecl) stmtNode()       {}
func (*ImportStmt) stmtNode()   {}
func (*ExportStmt) stmtNode()   {}
func (*ReturnStmt) stmtNode()   {}
func (*BreakStmt) stmtNode()    {}
func (*ContinueStmt) stmtNode() {}
func (*ThrowStmt) stmtNode()    {}
func (*ObjectDecl) stmtNode()   {}
func (*ServiceDecl) stmtNode()  {}

func (*IdentExpr) exprNode()      {}
func (*PathExpr) exprNode()       {}
func (*ThisExpr) exprNode()       {}
func (*Literal) exprNode()        {}
func (*InterpString) exprNode()   {}
func (*ArrayExpr) exprNode()      {}
func (*MapExpr) exprNode()        {}
func (*UnaryExpr) exprNode()      {}
func (*BinaryExpr) exprNode()     {}
func (*RangeExpr) exprNode()      {}
func (*CallExpr) exprNode()       {}
func (*MethodCallExpr) exprNode() {}
func (*DotExpr) exprNode()        {}
func (*IndexExpr) exprNode()      {}
func (*ClosureExpr) exprNode()    {}
func (*BlockExpr) exprNode()      {}
func (*IfExpr) exprNode()         {}
func (*SwitchExpr) exprNode()     {}
func (*WhileExpr) exprNode()      {}
func (*LoopExpr) exprNode()       {}
func (*DoExpr) exprNode()         {}
func (*ForExpr) exprNode()        {}
func (*TryExpr) exprNode()        {}
func (*DirectiveExpr) exprNode()  {}
