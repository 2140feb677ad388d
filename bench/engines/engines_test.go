package engines

import (
	"testing"
)

// The benchmarks: one per workload, one sub-benchmark per engine.
//
//	go test ./engines -run '^$' -bench . -benchmem -count 5
//
// Setup (compiling, building the inputs and the 100,000-entry list) is
// outside the timed loop; every operation's answer is checked inside it.

func BenchmarkLoop(b *testing.B)      { benchWorkload(b, "loop") }
func BenchmarkFib(b *testing.B)       { benchWorkload(b, "fib") }
func BenchmarkPredicate(b *testing.B) { benchWorkload(b, "predicate") }
func BenchmarkMember(b *testing.B)    { benchWorkload(b, "member") }
func BenchmarkStrings(b *testing.B)   { benchWorkload(b, "strings") }

func workload(tb testing.TB, name string) Workload {
	for _, w := range Workloads() {
		if w.Name == name {
			return w
		}
	}
	tb.Fatalf("no workload %q", name)
	return Workload{}
}

func setup(tb testing.TB, w Workload, engine string) Op {
	tb.Helper()
	op, err := w.Setup(engine, "testdata")
	if err != nil {
		tb.Fatal(err)
	}
	return op
}

// check runs operation i and fails unless it gives the expected answer.
func check(tb testing.TB, w Workload, op Op, i int) {
	got, err := op(i)
	if err != nil {
		tb.Fatal(err)
	}
	if want := w.Want[i%len(w.Want)]; got != want {
		tb.Fatalf("operation %d: got %d, want %d", i, got, want)
	}
}

func benchWorkload(b *testing.B, name string) {
	w := workload(b, name)
	for _, engine := range Engines {
		if !w.Has(engine) {
			continue
		}
		b.Run(engine, func(b *testing.B) {
			op := setup(b, w, engine)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				check(b, w, op, i)
			}
		})
	}
}

// TestAnswers checks every engine's answer to every input of every
// workload, twice over, so a script that only works once (state left
// behind) fails too.
func TestAnswers(t *testing.T) {
	for _, w := range Workloads() {
		for _, engine := range Engines {
			if !w.Has(engine) {
				continue
			}
			t.Run(w.Name+"/"+engine, func(t *testing.T) {
				op := setup(t, w, engine)
				for i := 0; i < 2*len(w.Want); i++ {
					check(t, w, op, i)
				}
			})
		}
	}
}

// TestEveryEngine checks that the tables have something in every column:
// each engine runs at least one workload, and every interpreter all of them.
func TestEveryEngine(t *testing.T) {
	ws := Workloads()
	for _, engine := range Engines {
		n := 0
		for _, w := range ws {
			if w.Has(engine) {
				n++
			}
		}
		if n == 0 || (engine != "expr" && n != len(ws)) {
			t.Errorf("%s runs %d of %d workloads", engine, n, len(ws))
		}
	}
}
