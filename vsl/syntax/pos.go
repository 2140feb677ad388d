// Package syntax is the front end of vSL: positions, tokens, the scanner, the
// recursive-descent parser and the abstract syntax tree.
//
// The package knows nothing about evaluation or mail. Every node carries the
// position of its first token, so that later phases (the compiler, the mail
// layer, the check command) can report file:line:col for anything they find.
package syntax

import (
	"fmt"
	"sort"
	"strings"
)

// Position is a location in a source file. Line and Col count from 1; Col
// counts Unicode code points. The zero Position is "unknown".
type Position struct {
	File string
	Line int32
	Col  int32
}

// IsValid reports whether the position is known.
func (p Position) IsValid() bool { return p.Line > 0 }

// String renders the position as file:line:col (or a subset when parts are unknown).
func (p Position) String() string {
	file := p.File
	if file == "" {
		file = "<input>"
	}
	if p.Line <= 0 {
		return file
	}
	if p.Col <= 0 {
		return fmt.Sprintf("%s:%d", file, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", file, p.Line, p.Col)
}

// Error is a syntax error at a position.
type Error struct {
	Pos Position
	Msg string
}

// Error renders the error as "file:line:col: message".
func (e Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList is the list of syntax errors of one parse, in source order.
// It implements error; the message of the whole list is the first error
// followed by a count of the others.
type ErrorList struct {
	Errs []Error
	Src  []byte // the source the positions refer to, for snippets
}

// Error returns every error, one per line.
func (l *ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l.Errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Sort orders the errors by position and removes duplicates on the same line
// and column.
func (l *ErrorList) Sort() {
	sort.SliceStable(l.Errs, func(i, j int) bool {
		a, b := l.Errs[i].Pos, l.Errs[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	out := l.Errs[:0]
	for i, e := range l.Errs {
		if i > 0 && e.Pos == l.Errs[i-1].Pos {
			continue
		}
		out = append(out, e)
	}
	l.Errs = out
}

// Detailed renders every error followed by its source line and a caret under
// the column, the way the command line tools print them.
func (l *ErrorList) Detailed() string {
	var b strings.Builder
	for i, e := range l.Errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
		if s := Snippet(l.Src, e.Pos); s != "" {
			b.WriteByte('\n')
			b.WriteString(s)
		}
	}
	return b.String()
}

// Snippet returns the source line of pos and a second line with a caret under
// its column, both indented by four spaces, or "" when the line is unknown.
// Tabs in the source line are kept so that the caret lines up in a terminal.
func Snippet(src []byte, pos Position) string {
	if pos.Line <= 0 || src == nil {
		return ""
	}
	line := 1
	start := 0
	for i := 0; i < len(src) && line < int(pos.Line); i++ {
		if src[i] == '\n' {
			line++
			start = i + 1
		}
	}
	if line != int(pos.Line) {
		return ""
	}
	end := start
	for end < len(src) && src[end] != '\n' {
		end++
	}
	text := strings.TrimRight(string(src[start:end]), "\r")
	var caret strings.Builder
	col := 1
	for _, r := range text {
		if col >= int(pos.Col) {
			break
		}
		if r == '\t' {
			caret.WriteByte('\t')
		} else {
			caret.WriteByte(' ')
		}
		col++
	}
	return "    " + text + "\n    " + caret.String() + "^"
}
