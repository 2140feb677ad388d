// Package golden runs chunked golden vSL scripts (internal/chunkedfile) in
// an environment a test provides: each chunk must print exactly its "##"
// lines and fail with exactly its "###" errors. The object and service
// packages share it; package vsl has its own copy, as it cannot import a
// package that imports it.
package golden

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/internal/chunkedfile"
	"github.com/vsl-milter/vsl-milter/vsl"
	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// Run runs every chunked script matching glob (files whose name ends in
// _helper.vsl are modules the others import, not tests), each chunk in a
// fresh Env from newEnv.
func Run(t *testing.T, glob string, newEnv func() *vsl.Env) {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no golden files match %s", glob)
	}
	for _, file := range files {
		if strings.HasSuffix(file, "_helper.vsl") {
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			for _, chunk := range chunkedfile.Read(t, file) {
				runChunk(t, file, chunk, newEnv())
			}
		})
	}
}

func runChunk(t *testing.T, file string, chunk *chunkedfile.Chunk, env *vsl.Env) {
	t.Helper()
	var out bytes.Buffer
	prog, err := vsl.Load(file, []byte(chunk.Source), env)
	if err == nil {
		th := vsl.NewThread(vsl.DefaultLimits())
		th.Out = &out
		_, err = prog.Run(th)
	}
	if err != nil {
		var list *syntax.ErrorList
		var ee *vsl.EvalError
		switch {
		case errors.As(err, &list):
			for _, e := range list.Errs {
				chunk.GotError(int(e.Pos.Line), e.Msg)
			}
		case errors.As(err, &ee):
			chunk.GotError(int(ee.Pos.Line), ee.Msg)
		default:
			t.Errorf("%s:%d: unexpected error type %T: %v", file, chunk.Line, err, err)
		}
	}
	chunk.Done()
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if out.Len() == 0 {
		got = nil
	}
	if len(got) != len(chunk.Output) || strings.Join(got, "\n") != strings.Join(chunk.Output, "\n") {
		t.Errorf("%s: chunk at line %d printed:\n%s\nwant:\n%s", file, chunk.Line,
			strings.Join(got, "\n"), strings.Join(chunk.Output, "\n"))
	}
}
