package vsl

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/internal/chunkedfile"
	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// TestGolden runs every chunked script under testdata/ (files whose name
// ends in _helper.vsl are modules imported by them, not tests): each chunk
// must print exactly its "## " lines and fail with exactly its "###" errors.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.vsl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files found")
	}
	for _, file := range files {
		if strings.HasSuffix(file, "_helper.vsl") {
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			for _, chunk := range chunkedfile.Read(t, file) {
				runChunk(t, file, chunk)
			}
		})
	}
}

func runChunk(t *testing.T, file string, chunk *chunkedfile.Chunk) {
	t.Helper()
	env := NewEnv()
	env.Loader = FileLoader
	var out bytes.Buffer
	prog, err := Load(file, []byte(chunk.Source), env)
	if err == nil {
		th := NewThread(DefaultLimits())
		th.Out = &out
		_, err = prog.Run(th)
	}
	if err != nil {
		var list *syntax.ErrorList
		var ee *EvalError
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
	if !equalLines(got, chunk.Output) {
		t.Errorf("%s: chunk at line %d printed:\n%s\nwant:\n%s", file, chunk.Line,
			strings.Join(got, "\n"), strings.Join(chunk.Output, "\n"))
	}
}

func equalLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
