package vsl

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// FuzzRun parses, compiles and runs arbitrary scripts under a small budget.
// Whatever the input, the interpreter must return a value or an error with
// a position: never panic, never hang.
func FuzzRun(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.vsl")
	bench, _ := filepath.Glob("testdata/bench/*.vsl")
	for _, file := range append(files, bench...) {
		src, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		// Each chunk of a golden file is a script of its own (the "---"
		// lines between them would not parse).
		for _, chunk := range strings.Split(string(src), "\n---\n") {
			f.Add(chunk)
		}
	}
	f.Add(`let a = [1, 2, 3]; a.push(a); print(a);`)
	f.Add(`fn f(x) { if x > 0 { f(x - 1) } else { 0 } } f(1000)`)
	f.Fuzz(func(t *testing.T, src string) {
		env := NewEnv()
		prog, err := Load("fuzz.vsl", []byte(src), env)
		if err != nil {
			var list *syntax.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("compile error of type %T: %v", err, err)
			}
			for _, e := range list.Errs {
				if !e.Pos.IsValid() {
					t.Fatalf("error without a position: %v", e)
				}
			}
			return
		}
		lim := Limits{MaxOperations: 20_000, MaxCallDepth: 32, MaxStringSize: 1 << 16, MaxArraySize: 1 << 12, MaxMapSize: 1 << 12}
		th := NewThread(lim)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		th.Reset(ctx)
		if _, err := prog.Run(th); err != nil {
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("runtime error of type %T: %v", err, err)
			}
			if ee.Msg == "" {
				t.Fatalf("runtime error without a message at %s", ee.Pos)
			}
		}
	})
}
