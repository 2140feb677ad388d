package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/bench/engines"
)

func loadSample(t *testing.T) *results {
	t.Helper()
	rs, err := readBench("testdata/engines.txt")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestParseBench(t *testing.T) {
	rs := loadSample(t)
	if rs.cpu != "Test CPU" {
		t.Errorf("cpu %q", rs.cpu)
	}
	tests := []struct {
		name, unit string
		want       float64
		n          int
	}{
		{"BenchmarkLoop/vsl", "ns/op", 2000, 3}, // median of three
		{"BenchmarkLoop/lua", "ns/op", 6000, 2}, // mean of the middle two
		{"BenchmarkLoop/lua", "allocs/op", 10, 2},
		{"BenchmarkSession/unix/ratio", "vsl/noop-throughput", 0.9443, 1},
		{"BenchmarkLoop/goja", "ns/op", 0, 0},
	}
	for _, tt := range tests {
		got, n := rs.median(tt.name, tt.unit)
		if got != tt.want || n != tt.n {
			t.Errorf("%s %s: got %v (%d samples), want %v (%d)", tt.name, tt.unit, got, n, tt.want, tt.n)
		}
	}
	if got := rs.units["BenchmarkSession/unix/ratio"]; strings.Join(got, " ") != "ns/op noop-µs/msg vsl-µs/msg vsl/noop-throughput" {
		t.Errorf("units %q", got)
	}
	if rs.runs() != 3 {
		t.Errorf("runs %d", rs.runs())
	}
}

func TestParseBenchMalformed(t *testing.T) {
	if _, err := parseBench(strings.NewReader("BenchmarkX-2 10 5 ns/op 7\n")); err == nil {
		t.Error("no error for an odd number of fields")
	}
	if _, err := parseBench(strings.NewReader("BenchmarkX-2 10 fast ns/op\n")); err == nil {
		t.Error("no error for a value that is not a number")
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ got, want string }{
		{fmtTime(95.34), "95.3 ns"},
		{fmtTime(100.8), "101 ns"},
		{fmtTime(1234), "1.23 µs"},
		{fmtTime(8390256), "8.39 ms"},
		{fmtTime(1.2e9), "1.20 s"},
		{fmtCount(1597974), "1,597,974"},
		{fmtCount(999), "999"},
		{fmtCount(0), "0"},
		{fmtRatio(0.486), "0.49×"},
		{fmtRatio(3.657), "3.66×"},
		{fmtRatio(1.0042), "1.004×"},
		{fmtRatio(0.9951), "0.995×"},
		{fmtRatio(12.44), "12.4×"},
		{fmtRatio(104.2), "104×"},
		{fmtUnit("vsl/noop-throughput", 0.94434), "0.9443"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestTarget checks the verdict on the sample: vSL beats gopher-lua on the
// loop but not on the predicate, and is 2× expr's time there.
func TestTarget(t *testing.T) {
	var b bytes.Buffer
	targetSection(&b, loadSample(t), engines.Workloads())
	out := b.String()
	for _, want := range []string{
		"| 1,000,000-iteration loop | gopher-lua | 3.00× | — | yes |",
		"| rule predicate over envelope fields | gopher-lua | 0.90× | 0.50× | **no**: vSL takes 1.11× gopher-lua's time; **no**: vSL takes 2.00× expr's time (bar 1.5×) |",
		"**Target not met in this run**: ",
		"fib was not measured",
		"Faster than vSL: gopher-lua on predicate (vSL takes 1.11× its time); expr on predicate (vSL takes 2.00× its time).",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	pf := dir + "/postfix.txt"
	os.WriteFile(pf, []byte("\n| configuration | msg/s |\n|---|---|\n| Postfix alone | 1 |\n"), 0o644)
	doc, err := build(config{
		engines: input{file: "testdata/engines.txt", cmd: "go test ./engines"},
		milter:  input{file: "testdata/engines.txt"},
		postfix: input{file: pf, cmd: "bench/postfix.sh"},
		runCmd:  "bench/run.sh --quick",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Benchmarks",
		"| Go | go",
		"| gopher-lua | `github.com/yuin/gopher-lua` v",
		"| 1,000,000-iteration loop | 2.00 µs | 6.00 µs (3.00×) | — | — | — | — |",
		"| loop | gopher-lua | 6,000 | 100 | 10 | 3.00× |",
		"| Session | ns/op | noop-µs/msg | vsl-µs/msg | vsl/noop-throughput |",
		"| unix/ratio | 723 µs | 351.1 | 371.8 | 0.9443 |",
		"| Postfix alone | 1 |",
		"## Standalone mode\n\nNot run.",
	} {
		if !bytes.Contains(doc, []byte(want)) {
			t.Errorf("missing %q in:\n%s", want, doc)
		}
	}
}
