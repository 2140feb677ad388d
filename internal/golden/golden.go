// Package golden runs chunked golden vSL scripts (internal/chunkedfile) in
// an environment a test provides: each chunk must print exactly its "##"
// lines and fail with exactly its "###" errors. The object and service
// packages share it; package vsl has its own copy, as it cannot import a
// package that imports it.
package golden

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/internal/chunkedfile"
	"github.com/vsl-milter/vsl-milter/vsl"
	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// Options say how RunOptions runs the chunks.
type Options struct {
	// NewEnv returns the Env of one chunk (each chunk gets a fresh one).
	NewEnv func() *vsl.Env
	// Fixtures, when set, is a glob of files copied into a new temporary
	// directory for each chunk; the chunk then runs as a file of that
	// directory, so that what it writes never touches testdata/, and the
	// directory's path reads TESTDIR in its output and errors.
	Fixtures string
}

// Run runs every chunked script matching glob (files whose name ends in
// _helper.vsl are modules the others import, not tests), each chunk in a
// fresh Env from newEnv.
func Run(t *testing.T, glob string, newEnv func() *vsl.Env) {
	t.Helper()
	RunOptions(t, glob, Options{NewEnv: newEnv})
}

// RunOptions is Run with fixtures (see Options).
func RunOptions(t *testing.T, glob string, opts Options) {
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
				runChunk(t, file, chunk, opts)
			}
		})
	}
}

// fixtureDir copies the files matching glob into a new temporary
// directory and returns it.
func fixtureDir(t *testing.T, glob string) string {
	t.Helper()
	dir := t.TempDir()
	fixtures, err := filepath.Glob(glob)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fixtures {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runChunk(t *testing.T, file string, chunk *chunkedfile.Chunk, opts Options) {
	t.Helper()
	path, clean := file, func(s string) string { return s }
	if opts.Fixtures != "" {
		dir := fixtureDir(t, opts.Fixtures)
		path = filepath.Join(dir, filepath.Base(file))
		clean = func(s string) string { return strings.ReplaceAll(s, dir, "TESTDIR") }
	}
	var out bytes.Buffer
	prog, err := vsl.Load(path, []byte(chunk.Source), opts.NewEnv())
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
				chunk.GotError(int(e.Pos.Line), clean(e.Msg))
			}
		case errors.As(err, &ee):
			chunk.GotError(int(ee.Pos.Line), clean(ee.Msg))
		default:
			t.Errorf("%s:%d: unexpected error type %T: %v", file, chunk.Line, err, err)
		}
	}
	chunk.Done()
	var got []string
	if out.Len() > 0 {
		got = strings.Split(strings.TrimSuffix(clean(out.String()), "\n"), "\n")
	}
	if len(got) != len(chunk.Output) || strings.Join(got, "\n") != strings.Join(chunk.Output, "\n") {
		t.Errorf("%s: chunk at line %d printed:\n%s\nwant:\n%s", file, chunk.Line,
			strings.Join(got, "\n"), strings.Join(chunk.Output, "\n"))
	}
}
