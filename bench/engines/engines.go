// Package engines runs the same workloads in vSL and in the script engines
// Go programs embed for rules (gopher-lua, starlark-go, goja, tengo and the
// expression language expr), for the side-by-side tables of BENCHMARKS.md.
//
// Each engine's script is in testdata/, written as that engine's users
// write it; this file is the host side: compile once, prepare the inputs in
// the engine's own values, call, read the answer. Compiling and preparing
// happen in Setup, outside any timed loop; an Op is one evaluation.
//
// The package lives in the bench module so that the peer engines never
// become dependencies of vsl-milter itself.
package engines

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/d5/tengo/v2"
	"github.com/d5/tengo/v2/stdlib"
	"github.com/dop251/goja"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	lua "github.com/yuin/gopher-lua"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// Engines names the engines in table order, vSL first. The names are those
// of the sub-benchmarks (BenchmarkLoop/vsl, BenchmarkLoop/lua, ...).
var Engines = []string{"vsl", "lua", "starlark", "goja", "tengo", "expr"}

// Names are the engines' names in the tables.
var Names = map[string]string{
	"vsl":      "vSL",
	"lua":      "gopher-lua",
	"starlark": "starlark-go",
	"goja":     "goja",
	"tengo":    "tengo",
	"expr":     "expr",
}

// Modules maps each peer engine to its Go module, for version reporting.
var Modules = map[string]string{
	"lua":      "github.com/yuin/gopher-lua",
	"starlark": "go.starlark.net",
	"goja":     "github.com/dop251/goja",
	"tengo":    "github.com/d5/tengo/v2",
	"expr":     "github.com/expr-lang/expr",
}

// An Op performs operation i of a workload and returns its answer, with
// false and true as 0 and 1. Operations cycle through the workload's
// inputs: operation i uses input i % len(Want).
type Op func(i int) (int64, error)

// A Workload is one piece of work written for several engines.
type Workload struct {
	Name  string // the benchmark is "Benchmark" + Name with its first letter upper-cased
	Title string // what it does, for the tables
	// Want[i % len(Want)] is the answer of operation i.
	Want   []int64
	setups map[string]func(dir string) (Op, error)
}

// Has reports whether engine runs the workload (expr has no loops or
// functions, so it runs only the expression workloads).
func (w Workload) Has(engine string) bool { _, ok := w.setups[engine]; return ok }

// Setup compiles engine's script for the workload from dir (the testdata
// directory) and prepares its inputs.
func (w Workload) Setup(engine, dir string) (Op, error) {
	s, ok := w.setups[engine]
	if !ok {
		return nil, fmt.Errorf("%s: no %s version", w.Name, engine)
	}
	op, err := s(dir)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", w.Name, engine, err)
	}
	return op, nil
}

// The inputs, in the order operations cycle through them.
var (
	// fibN is the argument of fib.
	fibN = 20
	// messages are the predicate's envelope-like fields; the answers are
	// true (local IP, big enough), true (blocked domain), false.
	messages = []message{
		{"example.org", "10.0.0.1", 4096},
		{"evil.example", "192.0.2.1", 10},
		{"example.net", "192.0.2.7", 4096},
	}
	// listSize entries "h0.example.com" ... "h99999.example.com"; probes
	// are the last entry and one that is absent, both a full scan.
	listSize = 100_000
	probes   = []string{"h99999.example.com", "h100000.example.com"}
	// headers are To: values; 2 and 1 parts mention doe-family.com.
	headers = []string{
		`Jenny Doe <JENNY.DOE@Doe-Family.com>, John.Doe@doe-family.com, "Bob" <bob@Example.NET>, Grandma <grandma@example.org>`,
		`Alice <alice@example.com>, Jane.Doe@DOE-FAMILY.COM`,
	}
)

type message struct {
	Domain, IP string
	Size       int64
}

func entry(i int) string { return "h" + strconv.Itoa(i) + ".example.com" }

// Workloads returns the workloads in table order.
func Workloads() []Workload {
	noLimit := vsl.DefaultLimits()
	noLimit.MaxOperations = 0 // a million iterations exceed the default budget
	return []Workload{
		{Name: "loop", Title: "1,000,000-iteration loop", Want: []int64{0}, setups: map[string]func(string) (Op, error){
			"vsl":      func(d string) (Op, error) { return vslOp(d, "loop.vsl", noLimit, nil) },
			"lua":      func(d string) (Op, error) { return luaOp(d, "loop.lua", "count_down", nil) },
			"starlark": func(d string) (Op, error) { return starOp(d, "loop.star", "count_down", nil) },
			"goja":     func(d string) (Op, error) { return gojaOp(d, "loop.js", "countDown", nil) },
			"tengo":    func(d string) (Op, error) { return tengoOp(d, "loop.tengo", nil, "", nil) },
		}},
		{Name: "fib", Title: "recursive fib(20)", Want: []int64{6765}, setups: map[string]func(string) (Op, error){
			"vsl": func(d string) (Op, error) {
				return vslOp(d, "fib.vsl", vsl.DefaultLimits(), []vsl.Value{vsl.Int(int64(fibN))})
			},
			"lua": func(d string) (Op, error) {
				return luaOp(d, "fib.lua", "fib", func(*lua.LState) []lua.LValue { return []lua.LValue{lua.LNumber(fibN)} })
			},
			"starlark": func(d string) (Op, error) {
				return starOp(d, "fib.star", "fib", []starlark.Tuple{{starlark.MakeInt(fibN)}})
			},
			"goja": func(d string) (Op, error) {
				return gojaOp(d, "fib.js", "fib", func(vm *goja.Runtime) []goja.Value { return []goja.Value{vm.ToValue(fibN)} })
			},
			"tengo": func(d string) (Op, error) {
				return tengoOp(d, "fib.tengo", nil, "n", []tengo.Object{&tengo.Int{Value: int64(fibN)}})
			},
		}},
		{Name: "predicate", Title: "rule predicate over envelope fields", Want: []int64{1, 1, 0}, setups: map[string]func(string) (Op, error){
			"vsl": func(d string) (Op, error) {
				var args []vsl.Value
				for _, m := range messages {
					args = append(args, vsl.NewMap(map[string]vsl.Value{
						"domain": vsl.String(m.Domain), "ip": vsl.String(m.IP), "size": vsl.Int(m.Size),
					}))
				}
				return vslOp(d, "predicate.vsl", vsl.DefaultLimits(), args)
			},
			"lua": func(d string) (Op, error) {
				return luaOp(d, "predicate.lua", "predicate", func(L *lua.LState) []lua.LValue {
					var args []lua.LValue
					for _, m := range messages {
						t := L.NewTable()
						t.RawSetString("domain", lua.LString(m.Domain))
						t.RawSetString("ip", lua.LString(m.IP))
						t.RawSetString("size", lua.LNumber(m.Size))
						args = append(args, t)
					}
					return args
				})
			},
			"starlark": func(d string) (Op, error) {
				var args []starlark.Tuple
				for _, m := range messages {
					dict := starlark.NewDict(3)
					dict.SetKey(starlark.String("domain"), starlark.String(m.Domain))
					dict.SetKey(starlark.String("ip"), starlark.String(m.IP))
					dict.SetKey(starlark.String("size"), starlark.MakeInt64(m.Size))
					dict.Freeze()
					args = append(args, starlark.Tuple{dict})
				}
				return starOp(d, "predicate.star", "predicate", args)
			},
			"goja": func(d string) (Op, error) {
				return gojaOp(d, "predicate.js", "predicate", func(vm *goja.Runtime) []goja.Value {
					var args []goja.Value
					for _, m := range messages {
						o := vm.NewObject()
						o.Set("domain", m.Domain)
						o.Set("ip", m.IP)
						o.Set("size", m.Size)
						args = append(args, o)
					}
					return args
				})
			},
			"tengo": func(d string) (Op, error) {
				var args []tengo.Object
				for _, m := range messages {
					args = append(args, &tengo.Map{Value: map[string]tengo.Object{
						"domain": &tengo.String{Value: m.Domain}, "ip": &tengo.String{Value: m.IP}, "size": &tengo.Int{Value: m.Size},
					}})
				}
				return tengoOp(d, "predicate.tengo", nil, "m", args)
			},
			"expr": func(d string) (Op, error) {
				var envs []any
				for _, m := range messages {
					envs = append(envs, map[string]any{"domain": m.Domain, "ip": m.IP, "size": m.Size})
				}
				return exprOp(d, "predicate.expr", envs)
			},
		}},
		{Name: "member", Title: "membership in a 100,000-entry list", Want: []int64{1, 0}, setups: withStringCalls("member", "member", "member", probes, map[string]func(string) (Op, error){
			"tengo": func(d string) (Op, error) {
				list := make([]tengo.Object, listSize)
				for i := range list {
					list[i] = &tengo.String{Value: entry(i)}
				}
				once := map[string]tengo.Object{"entries": &tengo.ImmutableArray{Value: list}}
				return tengoOp(d, "member.tengo", once, "x", []tengo.Object{&tengo.String{Value: probes[0]}, &tengo.String{Value: probes[1]}})
			},
			"expr": func(d string) (Op, error) {
				list := make([]string, listSize)
				for i := range list {
					list[i] = entry(i)
				}
				return exprOp(d, "member.expr", []any{
					map[string]any{"entries": list, "x": probes[0]},
					map[string]any{"entries": list, "x": probes[1]},
				})
			},
		})},
		{Name: "strings", Title: "header value: lower-case, split, contains", Want: []int64{2, 1}, setups: withStringCalls("strings", "count_family", "countFamily", headers, map[string]func(string) (Op, error){
			"tengo": func(d string) (Op, error) {
				return tengoOp(d, "strings.tengo", nil, "h", []tengo.Object{&tengo.String{Value: headers[0]}, &tengo.String{Value: headers[1]}})
			},
			"expr": func(d string) (Op, error) {
				return exprOp(d, "strings.expr", []any{map[string]any{"h": headers[0]}, map[string]any{"h": headers[1]}})
			},
		})},
	}
}

// withStringCalls adds to setups the vSL, Lua, Starlark and JavaScript
// versions of a workload whose script function takes one string, in turn
// each of in: base.vsl (the closure it returns), base.lua and base.star
// (the function fn), base.js (jsFn).
func withStringCalls(base, fn, jsFn string, in []string, setups map[string]func(string) (Op, error)) map[string]func(string) (Op, error) {
	setups["vsl"] = func(d string) (Op, error) {
		var args []vsl.Value
		for _, s := range in {
			args = append(args, vsl.String(s))
		}
		return vslOp(d, base+".vsl", vsl.DefaultLimits(), args)
	}
	setups["lua"] = func(d string) (Op, error) {
		return luaOp(d, base+".lua", fn, func(*lua.LState) []lua.LValue {
			var args []lua.LValue
			for _, s := range in {
				args = append(args, lua.LString(s))
			}
			return args
		})
	}
	setups["starlark"] = func(d string) (Op, error) {
		var args []starlark.Tuple
		for _, s := range in {
			args = append(args, starlark.Tuple{starlark.String(s)})
		}
		return starOp(d, base+".star", fn, args)
	}
	setups["goja"] = func(d string) (Op, error) {
		return gojaOp(d, base+".js", jsFn, func(vm *goja.Runtime) []goja.Value {
			var args []goja.Value
			for _, s := range in {
				args = append(args, vm.ToValue(s))
			}
			return args
		})
	}
	return setups
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// vslOp runs the file's top level once; it must evaluate to a function
// value, which each operation calls with the next of args (if any) on a
// thread reset as the mail layer resets it for each rule.
func vslOp(dir, file string, lim vsl.Limits, args []vsl.Value) (Op, error) {
	p, err := vsl.LoadFile(filepath.Join(dir, file), vsl.NewEnv())
	if err != nil {
		return nil, err
	}
	th := vsl.NewThread(lim)
	fn, err := p.Run(th)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	return func(i int) (int64, error) {
		th.Reset(ctx)
		var v vsl.Value
		var err error
		if len(args) == 0 {
			v, err = p.Call(th, fn)
		} else {
			v, err = p.Call(th, fn, args[i%len(args)])
		}
		if err != nil {
			return 0, err
		}
		switch v.Kind() {
		case vsl.KindBool:
			return b2i(v.AsBool()), nil
		case vsl.KindInt:
			return v.AsInt(), nil
		}
		return 0, fmt.Errorf("answer %s", vsl.Debug(v))
	}, nil
}

// luaOp runs the file in a new Lua state once and calls its global
// function fn per operation.
func luaOp(dir, file, fn string, args func(*lua.LState) []lua.LValue) (Op, error) {
	L := lua.NewState()
	if err := L.DoFile(filepath.Join(dir, file)); err != nil {
		return nil, err
	}
	f := L.GetGlobal(fn)
	if f.Type() != lua.LTFunction {
		return nil, fmt.Errorf("no function %s", fn)
	}
	var in []lua.LValue
	if args != nil {
		in = args(L)
	}
	return func(i int) (int64, error) {
		p := lua.P{Fn: f, NRet: 1, Protect: true}
		var err error
		if len(in) == 0 {
			err = L.CallByParam(p)
		} else {
			err = L.CallByParam(p, in[i%len(in)])
		}
		if err != nil {
			return 0, err
		}
		v := L.Get(-1)
		L.Pop(1)
		switch v := v.(type) {
		case lua.LBool:
			return b2i(bool(v)), nil
		case lua.LNumber:
			return int64(v), nil
		}
		return 0, fmt.Errorf("answer %v", v)
	}, nil
}

// starOp executes the file once (with while loops and recursion allowed,
// both off by default in Starlark) and calls its global fn per operation.
func starOp(dir, file, fn string, args []starlark.Tuple) (Op, error) {
	thread := &starlark.Thread{Name: "bench"}
	opts := &syntax.FileOptions{While: true, Recursion: true}
	path := filepath.Join(dir, file)
	globals, err := starlark.ExecFileOptions(opts, thread, path, nil, nil)
	if err != nil {
		return nil, err
	}
	f, ok := globals[fn].(starlark.Callable)
	if !ok {
		return nil, fmt.Errorf("no function %s", fn)
	}
	return func(i int) (int64, error) {
		var in starlark.Tuple
		if len(args) > 0 {
			in = args[i%len(args)]
		}
		v, err := starlark.Call(thread, f, in, nil)
		if err != nil {
			return 0, err
		}
		switch v := v.(type) {
		case starlark.Bool:
			return b2i(bool(v)), nil
		case starlark.Int:
			n, ok := v.Int64()
			if ok {
				return n, nil
			}
		}
		return 0, fmt.Errorf("answer %v", v)
	}, nil
}

// gojaOp runs the file once in a new runtime and calls its global function
// fn per operation.
func gojaOp(dir, file, fn string, args func(*goja.Runtime) []goja.Value) (Op, error) {
	src, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return nil, err
	}
	prog, err := goja.Compile(file, string(src), true)
	if err != nil {
		return nil, err
	}
	rt := goja.New()
	if _, err := rt.RunProgram(prog); err != nil {
		return nil, err
	}
	f, ok := goja.AssertFunction(rt.Get(fn))
	if !ok {
		return nil, fmt.Errorf("no function %s", fn)
	}
	var in []goja.Value
	if args != nil {
		in = args(rt)
	}
	this := goja.Undefined()
	return func(i int) (int64, error) {
		var v goja.Value
		var err error
		if len(in) == 0 {
			v, err = f(this)
		} else {
			v, err = f(this, in[i%len(in)])
		}
		if err != nil {
			return 0, err
		}
		if b, ok := v.Export().(bool); ok {
			return b2i(b), nil
		}
		return v.ToInteger(), nil
	}, nil
}

// tengoOp compiles the file once with the globals in once and, if input is
// set, a global of that name, which each operation sets to the next of
// args before it runs the compiled script and reads the global "result".
// That is how Tengo is embedded: it has no call into a script function.
func tengoOp(dir, file string, once map[string]tengo.Object, input string, args []tengo.Object) (Op, error) {
	src, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return nil, err
	}
	s := tengo.NewScript(src)
	s.SetImports(stdlib.GetModuleMap("text"))
	for name, v := range once {
		if err := s.Add(name, v); err != nil {
			return nil, err
		}
	}
	if input != "" {
		if err := s.Add(input, nil); err != nil {
			return nil, err
		}
	}
	c, err := s.Compile()
	if err != nil {
		return nil, err
	}
	return func(i int) (int64, error) {
		if input != "" {
			if err := c.Set(input, args[i%len(args)]); err != nil {
				return 0, err
			}
		}
		if err := c.Run(); err != nil {
			return 0, err
		}
		switch v := c.Get("result").Object().(type) {
		case *tengo.Bool:
			return b2i(!v.IsFalsy()), nil
		case *tengo.Int:
			return v.Value, nil
		default:
			return 0, fmt.Errorf("answer %v", v)
		}
	}, nil
}

// exprOp compiles the expression once for the type of envs[0] and
// evaluates it per operation on the next of envs, reusing one VM as expr's
// documentation advises for hot paths. The environments are maps, the
// same shape as the other engines' inputs and expr's fastest form here
// (a struct environment measured slower on all three workloads).
func exprOp(dir, file string, envs []any) (Op, error) {
	src, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return nil, err
	}
	prog, err := expr.Compile(string(src), expr.Env(envs[0]))
	if err != nil {
		return nil, err
	}
	var machine vm.VM
	return func(i int) (int64, error) {
		v, err := machine.Run(prog, envs[i%len(envs)])
		if err != nil {
			return 0, err
		}
		switch v := v.(type) {
		case bool:
			return b2i(v), nil
		case int:
			return int64(v), nil
		}
		return 0, fmt.Errorf("answer %v", v)
	}, nil
}
