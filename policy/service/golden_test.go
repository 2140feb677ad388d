package service

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/vsl-milter/vsl-milter/internal/golden"
	"github.com/vsl-milter/vsl-milter/vsl"
)

// TestGolden runs every chunked script under testdata/: each chunk must
// print exactly its "## " lines and fail with exactly its "###" errors.
// Each chunk runs from a fresh temporary directory holding copies of the
// fixtures (testdata/*.csv), so that writes never touch testdata/; the
// directory's path appears as TESTDIR in output and errors.
func TestGolden(t *testing.T) {
	golden.RunOptions(t, "testdata/*.vsl", golden.Options{NewEnv: newTestEnv, Fixtures: "testdata/*.csv"})
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
