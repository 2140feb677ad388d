package service_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vsl-milter/vsl-milter/policy/service"
	"github.com/vsl-milter/vsl-milter/vsl"
)

// Wiring services into an Env: v2 constructors and methods through
// Define, v1 declarations through the Env's Declare hook.
func Example() {
	dir, err := os.MkdirTemp("", "service-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	env := vsl.NewEnv()
	service.Define(env)
	env.Declare = func(d *vsl.Declaration) (vsl.Value, error) {
		if !d.Service {
			return vsl.Value{}, fmt.Errorf("objects are declared elsewhere")
		}
		return service.Declare(d.Name, d.Type, d.Value, d.File)
	}
	src := `
service greylist db:csv = #{connector: "greylist.csv", access: "O_RDWR", refresh: "always", delimiter: ","};
const check = cmd::build(#{command: "/bin/false", timeout: "5s"});

greylist.set(["192.0.2.1", "first seen"]);
print(greylist.get("192.0.2.1"));
print(check.run().code);
`
	prog, err := vsl.Load(filepath.Join(dir, "main.vsl"), []byte(src), env)
	if err != nil {
		fmt.Println(err)
		return
	}
	var out bytes.Buffer
	th := vsl.NewThread(vsl.DefaultLimits())
	th.Out = &out
	if _, err := prog.Run(th); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(out.String())
	// Output:
	// ["192.0.2.1", "first seen"]
	// 1
}
