package syntax

// Token is the kind of a lexical token.
type Token uint8

// The tokens of vSL. Operators are named for their spelling.
const (
	ILLEGAL Token = iota
	EOF

	// Literals and names.
	IDENT    // name
	INT      // 42, 0xff, 0o17, 0b1010, 1_000
	FLOAT    // 1.5, 1e10
	STRING   // "text" (escapes decoded)
	CHAR     // 'c'
	BACKTICK // `text ${expr}` — the scanner hands the raw body to the parser

	// Punctuation.
	LPAREN    // (
	RPAREN    // )
	LBRACK    // [
	RBRACK    // ]
	LBRACE    // {
	RBRACE    // }
	MAPSTART  // #{
	COMMA     // ,
	SEMI      // ;
	COLON     // :
	DCOLON    // ::
	DOT       // .
	QDOT      // ?.
	QBRACK    // ?[
	ARROW     // =>
	PIPE      // |
	OROR      // ||
	RANGE     // ..
	RANGEINCL // ..=

	// Operators.
	PLUS      // +
	MINUS     // -
	STAR      // *
	SLASH     // /
	PERCENT   // %
	POW       // **
	SHL       // <<
	SHR       // >>
	AMP       // &
	CARET     // ^
	ANDAND    // &&
	BANG      // !
	EQ        // ==
	NE        // !=
	LT        // <
	LE        // <=
	GT        // >
	GE        // >=
	QQ        // ??
	ASSIGN    // =
	PLUSEQ    // +=
	MINUSEQ   // -=
	STAREQ    // *=
	SLASHEQ   // /=
	PERCENTEQ // %=
	POWEQ     // **=
	SHLEQ     // <<=
	SHREQ     // >>=
	AMPEQ     // &=
	PIPEEQ    // |=
	CARETEQ   // ^=
	QQEQ      // ??=

	// Keywords. `is` and `not` are operators in vSL (equal, not equal);
	// `in` is membership and `!in` its negation (NOTIN).
	IN
	NOTIN
	IS
	NOT
	LET
	CONST
	IF
	ELSE
	SWITCH
	WHILE
	LOOP
	DO
	UNTIL
	FOR
	BREAK
	CONTINUE
	RETURN
	THROW
	TRY
	CATCH
	FN
	PRIVATE
	IMPORT
	EXPORT
	AS
	TRUE
	FALSE
	THIS
	GLOBAL // the identifier `global` in `global::NAME`

	// Directive keywords of vSL (contextual: they are keywords only where a
	// directive or declaration can start).
	RULE
	ACTION
	DELEGATE
	OBJECT
	SERVICE
)

var tokenNames = [...]string{
	ILLEGAL: "illegal token", EOF: "end of file",
	IDENT: "identifier", INT: "integer", FLOAT: "float", STRING: "string", CHAR: "character", BACKTICK: "template string",
	LPAREN: "(", RPAREN: ")", LBRACK: "[", RBRACK: "]", LBRACE: "{", RBRACE: "}", MAPSTART: "#{",
	COMMA: ",", SEMI: ";", COLON: ":", DCOLON: "::", DOT: ".", QDOT: "?.", QBRACK: "?[", ARROW: "=>",
	PIPE: "|", OROR: "||", RANGE: "..", RANGEINCL: "..=",
	PLUS: "+", MINUS: "-", STAR: "*", SLASH: "/", PERCENT: "%", POW: "**", SHL: "<<", SHR: ">>",
	AMP: "&", CARET: "^", ANDAND: "&&", BANG: "!", EQ: "==", NE: "!=", LT: "<", LE: "<=", GT: ">", GE: ">=",
	QQ: "??", ASSIGN: "=", PLUSEQ: "+=", MINUSEQ: "-=", STAREQ: "*=", SLASHEQ: "/=", PERCENTEQ: "%=",
	POWEQ: "**=", SHLEQ: "<<=", SHREQ: ">>=", AMPEQ: "&=", PIPEEQ: "|=", CARETEQ: "^=", QQEQ: "??=",
	IN: "in", NOTIN: "!in", IS: "is", NOT: "not", LET: "let", CONST: "const", IF: "if", ELSE: "else",
	SWITCH: "switch", WHILE: "while", LOOP: "loop", DO: "do", UNTIL: "until", FOR: "for", BREAK: "break",
	CONTINUE: "continue", RETURN: "return", THROW: "throw", TRY: "try", CATCH: "catch", FN: "fn",
	PRIVATE: "private", IMPORT: "import", EXPORT: "export", AS: "as", TRUE: "true", FALSE: "false",
	THIS: "this", GLOBAL: "global",
	RULE: "rule", ACTION: "action", DELEGATE: "delegate", OBJECT: "object", SERVICE: "service",
}

// String returns the token's spelling or a description of it.
func (t Token) String() string {
	if int(t) < len(tokenNames) && tokenNames[t] != "" {
		return tokenNames[t]
	}
	return "token(" + itoa(int(t)) + ")"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// CompoundOp returns the binary operator of a compound assignment token
// (PLUS for PLUSEQ) and true, or ILLEGAL and false.
func (t Token) CompoundOp() (Token, bool) {
	switch t {
	case PLUSEQ:
		return PLUS, true
	case MINUSEQ:
		return MINUS, true
	case STAREQ:
		return STAR, true
	case SLASHEQ:
		return SLASH, true
	case PERCENTEQ:
		return PERCENT, true
	case POWEQ:
		return POW, true
	case SHLEQ:
		return SHL, true
	case SHREQ:
		return SHR, true
	case AMPEQ:
		return AMP, true
	case PIPEEQ:
		return PIPE, true
	case CARETEQ:
		return CARET, true
	case QQEQ:
		return QQ, true
	}
	return ILLEGAL, false
}

// Keywords maps reserved words to their tokens. The directive words (rule,
// action, delegate, object, service) and `global` are not in it: the parser
// treats them as keywords only where they can start a directive or a
// declaration, so they stay usable as map keys and property names.
var Keywords = map[string]Token{
	"in": IN, "is": IS, "not": NOT, "let": LET, "const": CONST, "if": IF, "else": ELSE,
	"switch": SWITCH, "while": WHILE, "loop": LOOP, "do": DO, "until": UNTIL, "for": FOR,
	"break": BREAK, "continue": CONTINUE, "return": RETURN, "throw": THROW, "try": TRY,
	"catch": CATCH, "fn": FN, "private": PRIVATE, "import": IMPORT, "export": EXPORT, "as": AS,
	"true": TRUE, "false": FALSE, "this": THIS,
}
