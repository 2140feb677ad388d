package service

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

// TestGolden runs every chunked script under testdata/: each chunk must
// print exactly its "## " lines and fail with exactly its "###" errors.
// Each chunk runs from a fresh temporary directory holding copies of the
// fixtures (testdata/*.csv), so that writes never touch testdata/; the
// directory's path appears as TESTDIR in output and errors.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.vsl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files found")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			for _, chunk := range chunkedfile.Read(t, file) {
				runChunk(t, file, chunk)
			}
		})
	}
}

// newTestEnv returns the Env the golden scripts run in: the standard
// library, this package's builtins, v1 service declarations, and a Loader
// that serves the csv plugin stand-in.
func newTestEnv() *vsl.Env {
	env := vsl.NewEnv()
	Define(env)
	env.Declare = func(d *vsl.Declaration) (vsl.Value, error) {
		if !d.Service {
			return vsl.Value{}, errors.New("objects are not part of this test")
		}
		return Declare(d.Name, d.Type, d.Value, d.File)
	}
	env.Loader = func(path, from string) (string, []byte, error) {
		if src, ok := PluginSource(path); ok {
			return filepath.Join(filepath.Dir(from), path), src, nil
		}
		return vsl.FileLoader(path, from)
	}
	return env
}

func runChunk(t *testing.T, file string, chunk *chunkedfile.Chunk) {
	t.Helper()
	dir := t.TempDir()
	fixtures, err := filepath.Glob("testdata/*.csv")
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
	clean := func(s string) string { return strings.ReplaceAll(s, dir, "TESTDIR") }
	var out bytes.Buffer
	prog, err := vsl.Load(filepath.Join(dir, filepath.Base(file)), []byte(chunk.Source), newTestEnv())
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
	if strings.Join(got, "\n") != strings.Join(chunk.Output, "\n") || len(got) != len(chunk.Output) {
		t.Errorf("%s: chunk at line %d printed:\n%s\nwant:\n%s", file, chunk.Line,
			strings.Join(got, "\n"), strings.Join(chunk.Output, "\n"))
	}
}
