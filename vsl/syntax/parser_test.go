package syntax

import (
	"errors"
	"strings"
	"testing"
)

// letValue parses src, which must be one let statement, and returns its value.
func letValue(t *testing.T, src string) Expr {
	t.Helper()
	f, err := Parse("t.vsl", []byte(src))
	if err != nil {
		t.Fatalf("%q: %v", src, err)
	}
	if len(f.Stmts) != 1 {
		t.Fatalf("%q: %d statements, want 1", src, len(f.Stmts))
	}
	let, ok := f.Stmts[0].(*LetStmt)
	if !ok {
		t.Fatalf("%q: got %T, want *LetStmt", src, f.Stmts[0])
	}
	return let.Value
}

// TestBacktickText checks that back-tick strings are literal as in Rhai:
// no escape sequences, a doubled back-tick for one, and a back-tick ending
// its line starting the text on the next line.
func TestBacktickText(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{"let s = `a\\tb`;", `a\tb`},
		{"let s = `say ``hi```;", "say `hi`"},
		{"let s = `\nabc\n`;", "abc\n"},
		{"let s = `\r\nabc`;", "abc"},
		{"let s = ` \nabc`;", " \nabc"},
		{"let s = `$ {x} $`;", "$ {x} $"},
		{"let s = ``;", ""},
	}
	for _, tt := range tests {
		is, ok := letValue(t, tt.src).(*InterpString)
		if !ok || len(is.Parts) != 1 {
			t.Fatalf("%q: not a single-part back-tick string", tt.src)
		}
		lit, ok := is.Parts[0].(*Literal)
		if !ok || lit.Value != tt.want {
			t.Errorf("%q: got %#v, want %q", tt.src, is.Parts[0], tt.want)
		}
	}
}

// TestInterpolation checks that ${...} holds a block of statements, as in
// Rhai: one expression stays an expression, anything else is a block.
func TestInterpolation(t *testing.T) {
	tests := []struct {
		src   string
		kinds []string // the type of each part
	}{
		{"let s = `a${x}b`;", []string{"*syntax.Literal", "*syntax.IdentExpr", "*syntax.Literal"}},
		{"let s = `${ let y = 2; y * 3 }`;", []string{"*syntax.BlockExpr"}},
		{"let s = `${ if x { 1 } else { 2 } }`;", []string{"*syntax.IfExpr"}},
		{"let s = `${x;}`;", []string{"*syntax.BlockExpr"}},
		{"let s = `${`in ${1}`}!`;", []string{"*syntax.InterpString", "*syntax.Literal"}},
		{"let s = `${\"}\"}`;", []string{"*syntax.Literal"}},
		{"let s = `${ `a``b` }`;", []string{"*syntax.InterpString"}},
	}
	for _, tt := range tests {
		is, ok := letValue(t, tt.src).(*InterpString)
		if !ok {
			t.Fatalf("%q: not a back-tick string", tt.src)
		}
		var got []string
		for _, p := range is.Parts {
			got = append(got, typeName(p))
		}
		if strings.Join(got, " ") != strings.Join(tt.kinds, " ") {
			t.Errorf("%q: parts %v, want %v", tt.src, got, tt.kinds)
		}
	}
}

func typeName(e Expr) string {
	switch e.(type) {
	case *Literal:
		return "*syntax.Literal"
	case *IdentExpr:
		return "*syntax.IdentExpr"
	case *BlockExpr:
		return "*syntax.BlockExpr"
	case *IfExpr:
		return "*syntax.IfExpr"
	case *InterpString:
		return "*syntax.InterpString"
	}
	return "other"
}

// TestParseErrors pins the text and position of syntax errors.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{"let s = `abc", "t.vsl:1:9: unterminated back-tick string"},
		{"let s = `a${1 + 2`;", "t.vsl:1:11: unterminated ${...} in back-tick string"},
		{"let s = `a${}`;", "t.vsl:1:13: empty ${} in back-tick string"},
		{"let s = `${1 2}`;", "t.vsl:1:14: expected ';' after statement, found number 2"},
		{"let s = `${ let }`;", "t.vsl:1:17: expected variable name, found '}' closing ${"},
		{"let s = `x\n${ 1 + }`;", "t.vsl:2:8: unexpected '}' closing ${, expected an expression"},
		{"let x = ;", "t.vsl:1:9: unexpected ';', expected an expression"},
		{"let s = " + strings.Repeat("`${", 200) + strings.Repeat("}`", 200) + ";", "unterminated ${...} in back-tick string"},
	}
	for _, tt := range tests {
		_, err := Parse("t.vsl", []byte(tt.src))
		var list *ErrorList
		if !errors.As(err, &list) || len(list.Errs) == 0 {
			t.Errorf("%q: got %v, want an error list", tt.src, err)
			continue
		}
		if got := list.Errs[0].Error(); !strings.Contains(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.src, got, tt.want)
		}
	}
}
