package syntax

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse parses arbitrary input: the parser must return a tree or an
// error list whose errors all have a position inside the input, and never
// panic or hang.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../testdata/*.vsl")
	bench, _ := filepath.Glob("../testdata/bench/*.vsl")
	for _, file := range append(files, bench...) {
		if src, err := os.ReadFile(file); err == nil {
			f.Add(string(src))
		}
	}
	f.Add("let s = `a${ let x = `b${1}`; x }c`;")
	f.Add("rule \"r\" || { if x in [1, 2] { next() } else { deny() } }")
	f.Add("fn f(a, b) { a.b[c]?.d::e(|x| x ?? 0) }")
	f.Fuzz(func(t *testing.T, src string) {
		_, err := Parse("fuzz.vsl", []byte(src))
		if err == nil {
			return
		}
		var list *ErrorList
		if !errors.As(err, &list) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		if len(list.Errs) == 0 || len(list.Errs) > maxErrors {
			t.Fatalf("%d errors in the list", len(list.Errs))
		}
		lines := int32(1)
		for _, c := range src {
			if c == '\n' {
				lines++
			}
		}
		for _, e := range list.Errs {
			if !e.Pos.IsValid() || e.Pos.Line > lines {
				t.Fatalf("error outside the input (%d lines): %v", lines, e)
			}
			if e.Msg == "" {
				t.Fatalf("error without a message at %s", e.Pos)
			}
		}
	})
}
