package vsl

import (
	"context"
	"os"
	"testing"
)

// Benchmarks written in vSL and driven by testing.B, compiled once outside
// the timed loop. Run: go test ./vsl -run XXX -bench . -benchmem

func loadBench(b *testing.B, name string) *Program {
	b.Helper()
	src, err := os.ReadFile("testdata/bench/" + name)
	if err != nil {
		b.Fatal(err)
	}
	p, err := Load(name, src, NewEnv())
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func benchRun(b *testing.B, name string, want int64) {
	p := loadBench(b, name)
	lim := DefaultLimits()
	lim.MaxOperations = 0
	th := NewThread(lim)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		th.Reset(context.Background())
		v, err := p.Run(th)
		if err != nil {
			b.Fatal(err)
		}
		if v.AsInt() != want {
			b.Fatalf("got %s, want %d", Debug(v), want)
		}
	}
}

// BenchmarkLoop is Rhai's speed test: a 1,000,000-iteration while loop.
func BenchmarkLoop(b *testing.B) { benchRun(b, "loop.vsl", 0) }

// BenchmarkFib is recursive fib(20).
func BenchmarkFib(b *testing.B) { benchRun(b, "fib.vsl", 6765) }

// BenchmarkPredicate evaluates a rule-shaped predicate over a map of
// strings, the per-message work of a typical rule: compiled once, then one
// call per evaluation. It must not allocate.
func BenchmarkPredicate(b *testing.B) {
	p := loadBench(b, "predicate.vsl")
	th := NewThread(DefaultLimits())
	fn, err := p.Run(th)
	if err != nil {
		b.Fatal(err)
	}
	msgs := []Value{
		NewMap(map[string]Value{"domain": String("example.org"), "ip": String("10.0.0.1"), "size": Int(4096)}),
		NewMap(map[string]Value{"domain": String("evil.example"), "ip": String("192.0.2.1"), "size": Int(10)}),
		NewMap(map[string]Value{"domain": String("example.net"), "ip": String("192.0.2.7"), "size": Int(4096)}),
	}
	want := []bool{true, true, false}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % 3
		th.Reset(ctx)
		v, err := p.Call(th, fn, msgs[k])
		if err != nil {
			b.Fatal(err)
		}
		if v.AsBool() != want[k] {
			b.Fatalf("message %d: got %s", k, Debug(v))
		}
	}
}
