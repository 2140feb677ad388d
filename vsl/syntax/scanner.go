package syntax

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// token is one scanned token with its position and, for literals, its value.
type token struct {
	tok  Token
	pos  Position
	text string // identifier name, or raw text of a literal
	val  any    // int64, float64, string (decoded), rune; for BACKTICK the raw body
	end  Position
}

// scanner splits a source file into tokens.
type scanner struct {
	src  []byte
	file string
	off  int
	line int32
	col  int32
	errs []Error
	// endText, when set, is what the end of the input is to the user: the
	// scanner of a ${...} ends at its closing brace.
	endText string
}

func newScanner(file string, src []byte) *scanner {
	s := &scanner{src: src, file: file, line: 1, col: 1}
	if len(src) >= 2 && src[0] == '#' && src[1] == '!' {
		for s.off < len(src) && src[s.off] != '\n' {
			s.off++
		}
	}
	return s
}

func (s *scanner) pos() Position { return Position{File: s.file, Line: s.line, Col: s.col} }

func (s *scanner) errorf(p Position, format string, args ...any) {
	s.errs = append(s.errs, Error{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

func (s *scanner) peekByte(k int) byte {
	if s.off+k < len(s.src) {
		return s.src[s.off+k]
	}
	return 0
}

// next advances one rune and returns it (utf8.RuneError at the end).
func (s *scanner) next() rune {
	if s.off >= len(s.src) {
		return -1
	}
	r, w := rune(s.src[s.off]), 1
	if r >= utf8.RuneSelf {
		r, w = utf8.DecodeRune(s.src[s.off:])
	}
	s.off += w
	if r == '\n' {
		s.line++
		s.col = 1
	} else {
		s.col++
	}
	return r
}

func (s *scanner) peek() rune {
	if s.off >= len(s.src) {
		return -1
	}
	r := rune(s.src[s.off])
	if r >= utf8.RuneSelf {
		r, _ = utf8.DecodeRune(s.src[s.off:])
	}
	return r
}

// skipSpace skips white space and comments (block comments nest, as in Rhai).
func (s *scanner) skipSpace() {
	for s.off < len(s.src) {
		c := s.src[s.off]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			s.next()
		case c == '/' && s.peekByte(1) == '/':
			for s.off < len(s.src) && s.src[s.off] != '\n' {
				s.next()
			}
		case c == '/' && s.peekByte(1) == '*':
			start := s.pos()
			s.next()
			s.next()
			depth := 1
			for depth > 0 {
				if s.off >= len(s.src) {
					s.errorf(start, "unterminated block comment")
					return
				}
				switch {
				case s.src[s.off] == '/' && s.peekByte(1) == '*':
					s.next()
					s.next()
					depth++
				case s.src[s.off] == '*' && s.peekByte(1) == '/':
					s.next()
					s.next()
					depth--
				default:
					s.next()
				}
			}
		default:
			if c >= utf8.RuneSelf {
				r := s.peek()
				if unicode.IsSpace(r) {
					s.next()
					continue
				}
			}
			return
		}
	}
}

func isIdentStart(r rune) bool {
	return r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= utf8.RuneSelf && unicode.IsLetter(r))
}

func isIdentChar(r rune) bool {
	return isIdentStart(r) || (r >= '0' && r <= '9') || (r >= utf8.RuneSelf && unicode.IsDigit(r))
}

// scan returns the next token.
func (s *scanner) scan() token {
	s.skipSpace()
	t := token{pos: s.pos()}
	defer func() { t.end = s.pos() }()
	if s.off >= len(s.src) {
		t.tok = EOF
		t.text = s.endText
		return t
	}
	start := s.off
	r := s.next()
	switch {
	case isIdentStart(r):
		for isIdentChar(s.peek()) {
			s.next()
		}
		t.text = string(s.src[start:s.off])
		if kw, ok := Keywords[t.text]; ok {
			t.tok = kw
		} else {
			t.tok = IDENT
		}
		return t
	case r >= '0' && r <= '9':
		s.number(&t, start)
		return t
	}
	switch r {
	case '"':
		t.tok = STRING
		t.val = s.quoted('"', t.pos)
		t.text = string(s.src[start:s.off])
	case '\'':
		t.tok = CHAR
		str := s.quoted('\'', t.pos)
		rs := []rune(str)
		if len(rs) != 1 {
			if len(rs) == 0 {
				s.errorf(t.pos, "empty character literal")
			} else {
				s.errorf(t.pos, "character literal %s holds more than one character", string(s.src[start:s.off]))
			}
			t.val = rune(0)
		} else {
			t.val = rs[0]
		}
		t.text = string(s.src[start:s.off])
	case '`':
		t.tok = BACKTICK
		s.backtick(&t)
	case '(':
		t.tok = LPAREN
	case ')':
		t.tok = RPAREN
	case '[':
		t.tok = LBRACK
	case ']':
		t.tok = RBRACK
	case '{':
		t.tok = LBRACE
	case '}':
		t.tok = RBRACE
	case ',':
		t.tok = COMMA
	case ';':
		t.tok = SEMI
	case '#':
		if s.peek() == '{' {
			s.next()
			t.tok = MAPSTART
		} else {
			t.tok = ILLEGAL
			t.text = "#"
		}
	case ':':
		t.tok = s.pick(COLON, ':', DCOLON)
	case '.':
		if s.peek() == '.' {
			s.next()
			t.tok = s.pick(RANGE, '=', RANGEINCL)
		} else {
			t.tok = DOT
		}
	case '?':
		switch s.peek() {
		case '.':
			s.next()
			t.tok = QDOT
		case '[':
			s.next()
			t.tok = QBRACK
		case '?':
			s.next()
			t.tok = s.pick(QQ, '=', QQEQ)
		default:
			t.tok = ILLEGAL
			t.text = "?"
		}
	case '=':
		switch s.peek() {
		case '=':
			s.next()
			t.tok = EQ
		case '>':
			s.next()
			t.tok = ARROW
		default:
			t.tok = ASSIGN
		}
	case '|':
		switch s.peek() {
		case '|':
			s.next()
			t.tok = OROR
		case '=':
			s.next()
			t.tok = PIPEEQ
		default:
			t.tok = PIPE
		}
	case '&':
		switch s.peek() {
		case '&':
			s.next()
			t.tok = ANDAND
		case '=':
			s.next()
			t.tok = AMPEQ
		default:
			t.tok = AMP
		}
	case '+':
		t.tok = s.pick(PLUS, '=', PLUSEQ)
	case '-':
		t.tok = s.pick(MINUS, '=', MINUSEQ)
	case '*':
		if s.peek() == '*' {
			s.next()
			t.tok = s.pick(POW, '=', POWEQ)
		} else {
			t.tok = s.pick(STAR, '=', STAREQ)
		}
	case '/':
		t.tok = s.pick(SLASH, '=', SLASHEQ)
	case '%':
		t.tok = s.pick(PERCENT, '=', PERCENTEQ)
	case '^':
		t.tok = s.pick(CARET, '=', CARETEQ)
	case '!':
		switch {
		case s.peek() == '=':
			s.next()
			t.tok = NE
		case s.peekByte(0) == 'i' && s.peekByte(1) == 'n' && !isIdentChar(rune(s.peekByte(2))):
			s.next()
			s.next()
			t.tok = NOTIN
		default:
			t.tok = BANG
		}
	case '<':
		switch s.peek() {
		case '=':
			s.next()
			t.tok = LE
		case '<':
			s.next()
			t.tok = s.pick(SHL, '=', SHLEQ)
		default:
			t.tok = LT
		}
	case '>':
		switch s.peek() {
		case '=':
			s.next()
			t.tok = GE
		case '>':
			s.next()
			t.tok = s.pick(SHR, '=', SHREQ)
		default:
			t.tok = GT
		}
	default:
		t.tok = ILLEGAL
		t.text = string(r)
	}
	return t
}

// pick returns two if the next byte is c (consuming it), else one.
func (s *scanner) pick(one Token, c byte, two Token) Token {
	if s.peekByte(0) == c {
		s.next()
		return two
	}
	return one
}

func (s *scanner) number(t *token, start int) {
	isFloat := false
	base := 10
	if s.src[start] == '0' {
		switch s.peekByte(0) {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 10 {
			s.next()
		}
	}
	digit := func(r rune) bool {
		switch base {
		case 16:
			return (r >= '0' && r <= '9') || (r >= 'a' && r <= 'f') || (r >= 'A' && r <= 'F') || r == '_'
		case 8:
			return (r >= '0' && r <= '7') || r == '_'
		case 2:
			return r == '0' || r == '1' || r == '_'
		}
		return (r >= '0' && r <= '9') || r == '_'
	}
	for digit(s.peek()) {
		s.next()
	}
	if base == 10 {
		// A fraction needs a digit after the dot: 1..5 is a range, 1.abs() a method call.
		if s.peekByte(0) == '.' && s.peekByte(1) >= '0' && s.peekByte(1) <= '9' {
			isFloat = true
			s.next()
			for digit(s.peek()) {
				s.next()
			}
		}
		if c := s.peekByte(0); c == 'e' || c == 'E' {
			k := 1
			if n := s.peekByte(1); n == '+' || n == '-' {
				k = 2
			}
			if d := s.peekByte(k); d >= '0' && d <= '9' {
				isFloat = true
				for i := 0; i < k; i++ {
					s.next()
				}
				for digit(s.peek()) {
					s.next()
				}
			}
		}
	}
	if isIdentChar(s.peek()) {
		for isIdentChar(s.peek()) {
			s.next()
		}
		t.tok = ILLEGAL
		t.text = string(s.src[start:s.off])
		s.errorf(t.pos, "invalid number literal %s", t.text)
		t.tok, t.val = INT, int64(0)
		return
	}
	t.text = string(s.src[start:s.off])
	clean := strings.ReplaceAll(t.text, "_", "")
	if isFloat {
		f, err := strconv.ParseFloat(clean, 64)
		if err != nil {
			s.errorf(t.pos, "invalid float literal %s", t.text)
		}
		t.tok, t.val = FLOAT, f
		return
	}
	digits := clean
	if base != 10 {
		digits = clean[2:]
	}
	if digits == "" {
		s.errorf(t.pos, "invalid number literal %s: no digits", t.text)
		t.tok, t.val = INT, int64(0)
		return
	}
	u, err := strconv.ParseUint(digits, base, 64)
	if err != nil || (base == 10 && u > 1<<63) || (base != 10 && u > 1<<63-1 && false) {
		s.errorf(t.pos, "integer literal %s is out of range for i64", t.text)
		t.tok, t.val = INT, int64(0)
		return
	}
	t.tok = INT
	if u == 1<<63 {
		// Only valid after a unary minus; the parser checks.
		t.val = uint64(u)
		return
	}
	t.val = int64(u)
}

// quoted scans the rest of a "..." or '...' literal and decodes escapes.
func (s *scanner) quoted(q rune, start Position) string {
	var b strings.Builder
	for {
		if s.off >= len(s.src) || s.peek() == '\n' && q == '\'' {
			if q == '"' {
				s.errorf(start, "unterminated string literal")
			} else {
				s.errorf(start, "unterminated character literal")
			}
			return b.String()
		}
		p := s.pos()
		r := s.next()
		switch r {
		case q:
			return b.String()
		case '\n':
			if q == '"' {
				s.errorf(start, "unterminated string literal (use \\ at the end of a line to continue it, or a back-tick string)")
				return b.String()
			}
		case '\\':
			s.escape(&b, p, q)
			continue
		}
		b.WriteRune(r)
	}
}

// escape decodes one escape sequence after a backslash.
func (s *scanner) escape(b *strings.Builder, p Position, q rune) {
	r := s.next()
	switch r {
	case 'n':
		b.WriteByte('\n')
	case 't':
		b.WriteByte('\t')
	case 'r':
		b.WriteByte('\r')
	case '0':
		b.WriteByte(0)
	case '\\', '"', '\'', '`', '$':
		b.WriteRune(r)
	case '\n':
		// Line continuation: skip the leading white space of the next line.
		for s.peek() == ' ' || s.peek() == '\t' {
			s.next()
		}
	case '\r':
		if s.peek() == '\n' {
			s.next()
		}
		for s.peek() == ' ' || s.peek() == '\t' {
			s.next()
		}
	case 'x', 'u', 'U':
		n := map[rune]int{'x': 2, 'u': 4, 'U': 8}[r]
		var v rune
		for i := 0; i < n; i++ {
			c := s.peek()
			d := hexVal(c)
			if d < 0 {
				s.errorf(p, "invalid escape sequence '\\%c': expected %d hex digits", r, n)
				return
			}
			s.next()
			v = v*16 + rune(d)
		}
		if !utf8.ValidRune(v) {
			s.errorf(p, "invalid escape sequence: %U is not a valid character", v)
			return
		}
		b.WriteRune(v)
	case -1:
		s.errorf(p, "unterminated escape sequence")
	default:
		s.errorf(p, "invalid escape sequence '\\%c' in %s", r, map[rune]string{'"': "string", '\'': "character", '`': "string"}[q])
	}
}

func hexVal(c rune) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// interpPart is a piece of a back-tick string: literal text, or the source
// of a ${...} expression with its position.
type interpPart struct {
	text string
	expr bool
	pos  Position
	off  int // byte offset of the expression's source in the file
}

// backtick scans a back-tick string; t.val gets its []interpPart. As in
// Rhai, the text is literal: no escape sequences, a doubled back-tick
// stands for one, and a back-tick that ends its line starts the text on
// the next line (that first line break is dropped).
func (s *scanner) backtick(t *token) {
	var parts []interpPart
	var b strings.Builder
	if s.peek() == '\n' {
		s.next()
	} else if s.peek() == '\r' && s.peekByte(1) == '\n' {
		s.next()
		s.next()
	}
	litPos := s.pos()
	for {
		if s.off >= len(s.src) {
			s.errorf(t.pos, "unterminated back-tick string")
			break
		}
		p := s.pos()
		r := s.next()
		if r == '`' {
			if s.peek() != '`' {
				break
			}
			s.next()
		}
		if r == '$' && s.peek() == '{' {
			s.next()
			if b.Len() > 0 {
				parts = append(parts, interpPart{text: b.String(), pos: litPos})
				b.Reset()
			}
			exprPos := s.pos()
			exprOff := s.off
			if !s.skipInterp(0) {
				s.errorf(p, "unterminated ${...} in back-tick string")
				break
			}
			parts = append(parts, interpPart{text: string(s.src[exprOff : s.off-1]), expr: true, pos: exprPos, off: exprOff})
			litPos = s.pos()
			continue
		}
		b.WriteRune(r)
	}
	if b.Len() > 0 || len(parts) == 0 {
		parts = append(parts, interpPart{text: b.String(), pos: litPos})
	}
	t.val = parts
}

// maxInterpNesting bounds back-tick strings nested in ${...}, so that
// hostile input cannot exhaust the stack.
const maxInterpNesting = 100

// skipInterp skips to the '}' closing a ${ (consuming it), minding nested
// braces, strings, chars and back-tick strings (with their own ${...}). It
// reports whether it found it.
func (s *scanner) skipInterp(nesting int) bool {
	if nesting > maxInterpNesting {
		return false
	}
	depth := 1
	for s.off < len(s.src) {
		r := s.next()
		switch r {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return true
			}
		case '"', '\'':
			for s.off < len(s.src) {
				c := s.next()
				if c == '\\' {
					s.next()
					continue
				}
				if c == r || c == '\n' {
					break
				}
			}
		case '`':
			if !s.skipBacktick(nesting + 1) {
				return false
			}
		}
	}
	return false
}

// skipBacktick skips a back-tick string inside ${...} up to its closing
// back-tick (consumed). It reports whether it found it.
func (s *scanner) skipBacktick(nesting int) bool {
	for s.off < len(s.src) {
		r := s.next()
		switch {
		case r == '`' && s.peek() == '`':
			s.next()
		case r == '`':
			return true
		case r == '$' && s.peek() == '{':
			s.next()
			if !s.skipInterp(nesting) {
				return false
			}
		}
	}
	return false
}
