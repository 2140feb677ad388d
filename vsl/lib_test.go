package vsl

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// runRule loads src, runs its top level (which must evaluate to a closure
// taking no argument) and then calls the closure, as the mail layer calls
// a rule after loading: top-level variables are frozen by then.
func runRule(t *testing.T, env *Env, src string) (Value, error) {
	t.Helper()
	p, err := Load("rule.vsl", []byte(src), env)
	if err != nil {
		return Value{}, err
	}
	th := NewThread(DefaultLimits())
	fn, err := p.Run(th)
	if err != nil {
		t.Fatalf("top level: %v", err)
	}
	th.Reset(context.Background())
	return p.Call(th, fn)
}

// TestFrozenReceivers checks which methods rules may call on the top-level
// variables they share: those that only read, including the overloads of an
// in-place method that read (split on a string), but none that change.
func TestFrozenReceivers(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		want    string // Debug of the result
		wantErr string
	}{
		{"read a string", `let s = " a,b "; || s.split(",")`, `[" a", "b "]`, ""},
		{"read an array", `let a = [3, 1]; || [a.contains(1), a.index_of(3), a.len()]`, `[true, 0, 2]`, ""},
		{"read a map", `let m = #{k: 1}; || m.get("k") + m.keys().len()`, `2`, ""},
		{"map callback", `let a = [1, 2]; || a.map(|x| x * 2)`, `[2, 4]`, ""},
		{"read an element", `let a = [" x "]; || a[0].split("x")`, `[" ", " "]`, ""},
		{"trim a string", `let s = " a "; || s.trim()`, "", "cannot change top-level variable 's' after the script was loaded"},
		{"push to an array", `let a = []; || a.push(1)`, "", "cannot change top-level variable 'a'"},
		{"split an array", `let a = [1, 2]; || a.split(1)`, "", "cannot change top-level variable 'a'"},
		{"sort an element", `let a = [[2, 1]]; || a[0].sort()`, "", "cannot change top-level variable 'a'"},
		{"set a property", `let m = #{}; || m.set("k", 1)`, "", "cannot change top-level variable 'm'"},
		{"assign an element", `let a = [1]; || { a[0] = 2; }`, "", "cannot assign to top-level variable 'a'"},
		{"append with +=", `let a = [1]; || { a += 2; }`, "", "cannot assign to top-level variable 'a'"},
		{"script method", `fn f() { this.len() } let s = "ab"; || s.f()`, "", "cannot change top-level variable 's'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := runRule(t, NewEnv(), tt.src)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, %v; want error %q", Debug(v), err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := Debug(v); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestFrozenUnchanged checks that a refused change leaves the shared value
// as it was.
func TestFrozenUnchanged(t *testing.T) {
	p, err := Load("rule.vsl", []byte(`let a = [1]; || { try { a.push(2); } catch (e) { } try { a += 3; } catch (e) { } a }`), NewEnv())
	if err != nil {
		t.Fatal(err)
	}
	th := NewThread(DefaultLimits())
	fn, err := p.Run(th)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		th.Reset(context.Background())
		v, err := p.Call(th, fn)
		if err != nil {
			t.Fatal(err)
		}
		if got := Debug(v); got != "[1]" {
			t.Fatalf("the shared array became %s", got)
		}
	}
}

type box struct{ items []string }

func (b *box) TypeName() string { return "box" }
func (b *box) String() string   { return "box" }

// TestDefineOverloads checks that a host builtin defined under a standard
// library name overloads it instead of replacing it.
func TestDefineOverloads(t *testing.T) {
	env := NewEnv()
	env.Define(&Builtin{Name: "contains", Fn: func(c *Call, args []Value) (Value, error) {
		b, ok := args[0].AsHost().(*box)
		if !ok || len(args) != 2 {
			return Value{}, ErrNoMatch
		}
		for _, it := range b.items {
			if it == args[1].AsString() {
				return Bool(true), nil
			}
		}
		return Bool(false), nil
	}})
	env.Define(&Builtin{Name: "push", Mutates: true, Fn: func(c *Call, args []Value) (Value, error) {
		b, ok := args[0].AsHost().(*box)
		if !ok || len(args) != 2 {
			return Value{}, ErrNoMatch
		}
		args[0] = Host(&box{items: append(append([]string{}, b.items...), args[1].AsString())})
		return Value{}, nil
	}})
	env.DefineConst("BOX", Host(&box{items: []string{"x"}}))
	tests := []struct {
		src, want, wantErr string
	}{
		{src: `BOX.contains("x")`, want: "true"},
		{src: `BOX.contains("y")`, want: "false"},
		{src: `"xyz".contains("y")`, want: "true"},
		{src: `[1, 2].contains(2)`, want: "true"},
		{src: `let b = BOX; b.push("y"); b.contains("y")`, want: "true"},
		{src: `let a = [1]; a.push(2); a`, want: "[1, 2]"},
		{src: `1.contains(1)`, wantErr: "function not found: contains(i64, i64)"},
	}
	for _, tt := range tests {
		p, err := Load("t.vsl", []byte(tt.src), env)
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		v, err := p.Run(NewThread(DefaultLimits()))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: got %s, %v; want error %q", tt.src, Debug(v), err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		if got := Debug(v); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.src, got, tt.want)
		}
	}
	b := env.Lookup("contains")
	if b.Mutates || !changes(env.Lookup("push"), NewArray(nil)) {
		t.Errorf("overloading lost the Mutates flags: contains %v, push %v", b.Mutates, env.Lookup("push").Mutates)
	}
}

// TestCallOutsideRun checks the Call API without a running thread.
func TestCallOutsideRun(t *testing.T) {
	c := &Call{name: "f"}
	if _, err := c.CallFn(Value{}); err == nil {
		t.Error("CallFn outside a run succeeded")
	}
	lim := DefaultLimits()
	tests := []struct {
		name string
		err  error
	}{
		{"string at the limit", c.CheckString(lim.MaxStringSize)},
		{"array at the limit", c.CheckArray(lim.MaxArraySize)},
		{"map at the limit", c.CheckMap(lim.MaxMapSize)},
	}
	for _, tt := range tests {
		if tt.err != nil {
			t.Errorf("%s: %v", tt.name, tt.err)
		}
	}
	for name, err := range map[string]error{
		"string": c.CheckString(lim.MaxStringSize + 1),
		"array":  c.CheckArray(lim.MaxArraySize + 1),
		"map":    c.CheckMap(lim.MaxMapSize + 1),
	} {
		if err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
			t.Errorf("%s over the limit: got %v", name, err)
		}
	}
}

// TestStdlibNeverPanics calls every standard function with argument lists
// of every kind: each call must return a value or an error, and a wrong
// kind must be ErrNoMatch or a plain error, never a panic.
func TestStdlibNeverPanics(t *testing.T) {
	env := NewEnv()
	samples := []Value{
		Value{}, Bool(true), Int(-1), Int(3), Int(1 << 62), Float(-2.5), Float(0),
		Char('é'), String(""), String("a,é b"), NewArray([]Value{Int(2), Int(1)}),
		NewArray(nil), NewMap(map[string]Value{"a": Int(1)}), NewRange(-2, 3, true),
		Host(&box{}),
	}
	th := NewThread(Limits{MaxOperations: 1000, MaxCallDepth: 8, MaxStringSize: 1 << 12, MaxArraySize: 1 << 10, MaxMapSize: 1 << 10})
	for _, name := range env.FuncNames() {
		b := env.Lookup(name)
		var args []Value
		var try func(depth int)
		try = func(depth int) {
			call := &Call{th: th, name: name}
			in := append([]Value(nil), args...)
			for i := range in {
				in[i] = in[i].Clone()
			}
			_, err := callBuiltin(b, call, in)
			if err != nil && strings.HasPrefix(err.Error(), "internal error") {
				t.Errorf("%s: %v", signature(name, args), err)
			}
			if depth == 3 {
				return
			}
			for _, s := range samples {
				args = append(args, s)
				try(depth + 1)
				args = args[:len(args)-1]
			}
		}
		try(0)
	}
}

// TestCallbackErrors checks that an error inside a callback keeps its own
// position and stops the builtin.
func TestCallbackErrors(t *testing.T) {
	p, err := Load("cb.vsl", []byte("let a = [1, 0];\na.map(|x|\n  10 / x)"), NewEnv())
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Run(NewThread(DefaultLimits()))
	var ee *EvalError
	if !errors.As(err, &ee) {
		t.Fatalf("got %v, want an EvalError", err)
	}
	if ee.Pos.Line != 3 || !strings.Contains(ee.Msg, "division by zero") {
		t.Errorf("got %s at line %d, want division by zero at line 3", ee.Msg, ee.Pos.Line)
	}
	if len(ee.Stack) == 0 || ee.Stack[0].Line != 2 {
		t.Errorf("the error's stack %v does not lead to the map call on line 2", ee.Stack)
	}
}

// TestFolding checks that a pure builtin with constant arguments runs once
// at load time, not once per call of the rule that contains it, and that
// what cannot be folded still runs per call.
func TestFolding(t *testing.T) {
	tests := []struct {
		name      string
		pure      bool
		src       string
		wantCalls int // after loading and calling the rule 3 times
		want      string
	}{
		{"pure, constant arguments", true, `|| probe("x", -1)`, 1, `"x"`},
		{"pure, method style", true, `|| "x".probe(2)`, 1, `"x"`},
		{"pure, variable argument", true, `let v = "x"; || probe(v)`, 3, `"x"`},
		{"not pure", false, `|| probe("x")`, 3, `"x"`},
		// One attempt at load time, then every call.
		{"pure, failing", true, `|| { try { probe("fail") } catch (e) { e } }`, 4, `"probe: failed"`},
		{"pure, array result", true, `|| probe("array")`, 4, `["array"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			env := NewEnv()
			env.Define(&Builtin{Name: "probe", Pure: tt.pure, Fn: func(c *Call, args []Value) (Value, error) {
				if args[0].kind != KindString {
					return Value{}, ErrNoMatch
				}
				calls++
				switch args[0].AsString() {
				case "fail":
					return Value{}, errors.New("failed")
				case "array":
					return NewArray([]Value{args[0]}), nil
				}
				return args[0], nil
			}})
			p, err := Load("fold.vsl", []byte(tt.src), env)
			if err != nil {
				t.Fatal(err)
			}
			th := NewThread(DefaultLimits())
			fn, err := p.Run(th)
			if err != nil {
				t.Fatal(err)
			}
			var v Value
			for range 3 {
				th.Reset(context.Background())
				if v, err = p.Call(th, fn); err != nil {
					t.Fatal(err)
				}
			}
			if calls != tt.wantCalls || Debug(v) != tt.want {
				t.Errorf("got %s after %d calls, want %s after %d", Debug(v), calls, tt.want, tt.wantCalls)
			}
		})
	}
}

// TestUnlimitedSizes checks that a run without size limits still refuses
// a single value too large to allocate, instead of crashing the process.
func TestUnlimitedSizes(t *testing.T) {
	tests := []struct{ src, wantErr string }{
		{`let s = ""; s.pad(1 << 62, 'x');`, "pad: string length 1099511627776 exceeds the limit of 1073741824 bytes"},
		{`let a = []; a.pad(1 << 62, 0);`, "pad: array size 1099511627776 exceeds the limit of 134217728 elements"},
		{`range(0, 1 << 62, 1)`, "range: array size 1099511627776 exceeds the limit of 134217728 elements"},
	}
	for _, tt := range tests {
		p, err := Load("big.vsl", []byte(tt.src), NewEnv())
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Run(NewThread(Limits{}))
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: got %v, want %q", tt.src, err, tt.wantErr)
		}
	}
}

// TestHotPathsDoNotAllocate checks that the functions rules call on every
// message allocate nothing when their result needs no new value.
func TestHotPathsDoNotAllocate(t *testing.T) {
	tests := []string{
		`s.len() > 3 && s.starts_with("ex") && s.ends_with(".org") && s.contains('.')`,
		`a.contains("b") && a.len() == 3 && a.index_of("c") == 2 && !a.is_empty()`,
		`m.contains("k") && m.len() == 1 && s.index_of("ample") == 2`,
		`s == "example.org" && (1..5).contains(3) && 7.is_odd() && max(1, 2) == 2`,
	}
	for _, expr := range tests {
		src := `let s = "example.org"; let a = ["a", "b", "c"]; let m = #{k: 1}; || ` + expr
		p, err := Load("hot.vsl", []byte(src), NewEnv())
		if err != nil {
			t.Fatal(err)
		}
		th := NewThread(DefaultLimits())
		fn, err := p.Run(th)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		allocs := testing.AllocsPerRun(100, func() {
			th.Reset(ctx)
			v, err := p.Call(th, fn)
			if err != nil || !v.AsBool() {
				t.Fatalf("%s: got %s, %v", expr, Debug(v), err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per call", expr, allocs)
		}
	}
}
