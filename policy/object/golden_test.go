package object

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

// newEnv returns the Env the golden scripts run in: the standard library,
// the objects, file imports, and v1 object declarations through Declare.
func newEnv() *vsl.Env {
	env := vsl.NewEnv()
	Define(env)
	env.Loader = vsl.FileLoader
	env.Declare = func(d *vsl.Declaration) (vsl.Value, error) {
		if d.Service {
			return vsl.Value{}, errors.New("services are not part of the object tests")
		}
		return Declare(d.Type, d.Value, d.File)
	}
	return env
}

// TestGolden runs every chunked script under testdata/ (files whose name
// ends in _helper.vsl are modules the others import): each chunk must print
// exactly its "## " lines and fail with exactly its "###" errors.
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
	var out bytes.Buffer
	prog, err := vsl.Load(file, []byte(chunk.Source), newEnv())
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
	if strings.Join(got, "\n") != strings.Join(chunk.Output, "\n") || len(got) != len(chunk.Output) {
		t.Errorf("%s: chunk at line %d printed:\n%s\nwant:\n%s", file, chunk.Line,
			strings.Join(got, "\n"), strings.Join(chunk.Output, "\n"))
	}
}
