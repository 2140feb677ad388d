package object

import (
	"errors"
	"testing"

	"github.com/vsl-milter/vsl-milter/internal/golden"
	"github.com/vsl-milter/vsl-milter/vsl"
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
	golden.Run(t, "testdata/*.vsl", newEnv)
}
