package service

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// The service types, as written after the name in a v1 declaration. Each
// is also the type_of name of the service values of that type.
const (
	TypeCmd  = "cmd"
	TypeSMTP = "smtp"
	TypeCSV  = "db:csv"
)

// dialect selects the defaults of the vSMTP version a declaration comes
// from: v1 `service` statements or v2 constructor functions.
type dialect uint8

const (
	dialectV1 dialect = iota + 1
	dialectV2
)

// Declare builds the value of a v1 declaration `service NAME TYPE = #{...};`.
// name is the service's name, typ its TYPE ("cmd", "smtp" or "db:csv";
// "shell", vSMTP 1.0's name for cmd, is accepted too), v the parameter map,
// and file the declaring script's path: a relative csv connector resolves
// against its directory.
//
// The returned error does not repeat the service's name, which the vsl
// runtime puts in front of it ("service 'NAME': ..."); it starts with the
// type, e.g. `db:csv: missing key "connector"`.
func Declare(name, typ string, v vsl.Value, file string) (vsl.Value, error) {
	var (
		h   vsl.HostValue
		err error
	)
	switch typ {
	case TypeCmd, "shell":
		typ = TypeCmd
		h, err = buildCmd(name, v, dialectV1)
	case TypeSMTP:
		h, err = buildSMTP(name, v, dialectV1)
	case TypeCSV:
		h, err = buildCSV(name, v, baseDir(file), dialectV1)
	case "db:mysql":
		return vsl.Value{}, fmt.Errorf("service type db:mysql is not supported by vsl-milter (supported: cmd, smtp, db:csv)")
	default:
		return vsl.Value{}, fmt.Errorf("unknown service type %q (supported: cmd, smtp, db:csv)", typ)
	}
	if err != nil {
		return vsl.Value{}, fmt.Errorf("%s: %w", typ, err)
	}
	return vsl.Host(h), nil
}

// baseDir returns the directory relative paths of a script resolve against.
func baseDir(file string) string {
	if file == "" {
		return "."
	}
	return filepath.Dir(file)
}

// Define registers the v2 constructors and the service methods in env:
//
//	cmd::build(#{command, args, timeout, user, group})   -> cmd service
//	smtp::connect(#{delegator: #{address, timeout}, receiver}) -> smtp service
//	csv::file(#{connector, access, refresh, delimiter})  -> db:csv service
//	cmd.run() / cmd.run(["arg", ...])  -> #{has_code, code, has_signal, signal, timed_out}
//	csv.get(key) -> array of strings ([] when no record has that key)
//	csv.set(["field", ...]) -> ()
//	csv.rm(key) -> ()
//
// vSMTP v2 spells the first two the same way; its csv constructor came from
// a plugin, `import "plugins/libvsmtp_plugin_csv" as db;` then
// `db::csv(#{...})`, which a module Loader can serve with PluginSource.
//
// The methods are builtins named run, get, set and rm that take service
// receivers only and return vsl.ErrNoMatch for anything else, so that
// Env.Define's overloading passes other calls (the standard library's
// string get, ...) to the builtins defined before them. None changes its
// receiver, so services declared as constants accept them.
func Define(env *vsl.Env) {
	env.Define(&vsl.Builtin{Name: "cmd::build", Fn: func(c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 1 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		h, err := buildCmd("", args[0], dialectV2)
		if err != nil {
			return vsl.Value{}, err
		}
		return vsl.Host(h), nil
	}})
	env.Define(&vsl.Builtin{Name: "smtp::connect", Fn: func(c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 1 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		h, err := buildSMTP("", args[0], dialectV2)
		if err != nil {
			return vsl.Value{}, err
		}
		return vsl.Host(h), nil
	}})
	env.Define(&vsl.Builtin{Name: "csv::file", Fn: func(c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 1 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		h, err := buildCSV("", args[0], baseDir(c.Pos().File), dialectV2)
		if err != nil {
			return vsl.Value{}, err
		}
		return vsl.Host(h), nil
	}})
	env.Define(&vsl.Builtin{Name: "run", Fn: cmdRun})
	env.Define(&vsl.Builtin{Name: "get", Fn: csvGet})
	env.Define(&vsl.Builtin{Name: "set", Fn: csvSet})
	env.Define(&vsl.Builtin{Name: "rm", Fn: csvRm})
}

// pluginCSVSource is the module standing in for vSMTP v2's csv plugin.
const pluginCSVSource = `// vsl-milter's stand-in for vSMTP's csv plugin (libvsmtp_plugin_csv).
fn csv(parameters) { csv::file(parameters) }
`

// PluginSource returns the source of a module that stands in for the vSMTP
// v2 plugin imported as path, and whether path names one. vSMTP v2 scripts
// open csv tables with `import "plugins/libvsmtp_plugin_csv" as db;` and
// `db::csv(#{...})`; a Loader that serves this source for that import makes
// them work unchanged. A relative connector given through it resolves
// against the directory of the canonical path the Loader gives the module.
func PluginSource(path string) ([]byte, bool) {
	base := strings.TrimSuffix(filepath.Base(path), ".so")
	if base == "libvsmtp_plugin_csv" {
		return []byte(pluginCSVSource), true
	}
	return nil, false
}

// sameHost reports whether other is the host value h itself: two services
// are equal only when they are the same declaration.
func sameHost(h vsl.HostValue, other vsl.Value) (eq, ok bool) {
	o := other.AsHost()
	if o == nil {
		return false, false
	}
	return o == h, true
}
