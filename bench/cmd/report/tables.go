package main

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/vsl-milter/vsl-milter/bench/engines"
)

// interpreters are the peers vSL should beat on every workload; expr, an
// expression language, is the bar for the predicate only.
var interpreters = []string{"lua", "starlark", "goja", "tengo"}

// exprBar is how much slower than expr vSL may be on the predicate.
const exprBar = 1.5

// benchName is the result name of a workload run by an engine.
func benchName(w engines.Workload, engine string) string {
	r, n := utf8.DecodeRuneInString(w.Name)
	return "Benchmark" + string(unicode.ToUpper(r)) + w.Name[n:] + "/" + engine
}

// engineSection writes the summary, the check against the target and the
// detail tables of the engine benchmarks.
func engineSection(w io.Writer, cmd string, rs *results) {
	fmt.Fprintf(w, "## vSL and the engines Go programs embed\n\n")
	fmt.Fprintf(w, "The same work in each engine, written as its users write it (scripts in `bench/engines/testdata/`), "+
		"compiled once outside the timed loop, every answer checked. ")
	if cmd != "" {
		fmt.Fprintf(w, "In `bench/`: `%s`", cmd)
		if rs.passes > 1 {
			fmt.Fprintf(w, ", compiled once and run %d times, each run a pass over every workload and engine "+
				"so that a slow spell of the machine spreads over all of them", rs.passes)
		}
		fmt.Fprintf(w, ".")
	}
	fmt.Fprintf(w, "\n\nTime per operation, median of %s; in brackets the engine's time ÷ vSL's (above 1: vSL is faster). "+
		"expr is an expression language without loops or functions: it runs only the expression workloads.\n\n",
		plural(rs.runs(), "run", "runs"))

	ws := engines.Workloads()
	sum := &table{head: []string{"workload"}, align: []byte{'l'}}
	for _, e := range engines.Engines {
		sum.head = append(sum.head, engines.Names[e])
		sum.align = append(sum.align, 'r')
	}
	for _, wl := range ws {
		row := []string{wl.Title}
		base, nb := rs.median(benchName(wl, "vsl"), "ns/op")
		for _, e := range engines.Engines {
			v, n := rs.median(benchName(wl, e), "ns/op")
			cell := fmtCell(n > 0, fmtTime(v))
			if n > 0 && e != "vsl" && nb > 0 {
				cell += " (" + fmtRatio(v/base) + ")"
			}
			row = append(row, cell)
		}
		sum.add(row...)
	}
	fmt.Fprintf(w, "%s\n", sum)

	targetSection(w, rs, ws)

	fmt.Fprintf(w, "### Per engine: time, memory, allocations\n\n")
	det := &table{head: []string{"workload", "engine", "ns/op", "B/op", "allocs/op", "time ÷ vSL"}, align: []byte("llrrrr")}
	for _, wl := range ws {
		base, nb := rs.median(benchName(wl, "vsl"), "ns/op")
		for _, e := range engines.Engines {
			name := benchName(wl, e)
			ns, n := rs.median(name, "ns/op")
			if n == 0 {
				continue
			}
			by, nby := rs.median(name, "B/op")
			al, nal := rs.median(name, "allocs/op")
			ratio := "1"
			if e != "vsl" {
				ratio = fmtCell(nb > 0, fmtRatio(ns/base))
			}
			det.add(wl.Name, engines.Names[e], fmtCount(ns), fmtCell(nby > 0, fmtCount(by)), fmtCell(nal > 0, fmtCount(al)), ratio)
		}
	}
	fmt.Fprintf(w, "%s\n", det)
}

// targetSection checks the target (vSL the fastest of the interpreters on
// every workload, and within exprBar of expr on the predicate) and names
// every engine faster than vSL anywhere, target or not.
func targetSection(w io.Writer, rs *results, ws []engines.Workload) {
	fmt.Fprintf(w, "### Against the target\n\n")
	fmt.Fprintf(w, "Target: vSL is the fastest of the interpreters (%s) on every workload, and within %.1f× of expr on the predicate.\n\n",
		names(interpreters), exprBar)
	t := &table{head: []string{"workload", "fastest interpreter", "its time ÷ vSL's", "expr's time ÷ vSL's", "target met"}, align: []byte("llrrl")}
	var misses, faster []string
	for _, wl := range ws {
		base, nb := rs.median(benchName(wl, "vsl"), "ns/op")
		best, bestNS := "", 0.0
		for _, e := range interpreters {
			if v, n := rs.median(benchName(wl, e), "ns/op"); n > 0 && (best == "" || v < bestNS) {
				best, bestNS = e, v
			}
		}
		ex, ne := rs.median(benchName(wl, "expr"), "ns/op")
		if nb == 0 || best == "" {
			t.add(wl.Title, "—", "—", "—", "not measured")
			misses = append(misses, wl.Name+" was not measured")
			continue
		}
		var met []string
		if bestNS <= base {
			met = append(met, fmt.Sprintf("**no**: vSL takes %s %s's time", fmtRatio(base/bestNS), engines.Names[best]))
			misses = append(misses, fmt.Sprintf("%s (vSL takes %s %s's time)", wl.Name, fmtRatio(base/bestNS), engines.Names[best]))
		}
		if wl.Name == "predicate" {
			switch {
			case ne == 0:
				met = append(met, "**no**: expr not measured")
				misses = append(misses, "expr's predicate was not measured")
			case base/ex > exprBar:
				met = append(met, fmt.Sprintf("**no**: vSL takes %s expr's time (bar %.1f×)", fmtRatio(base/ex), exprBar))
				misses = append(misses, fmt.Sprintf("predicate against expr (vSL takes %s its time)", fmtRatio(base/ex)))
			default:
				met = append(met, fmt.Sprintf("yes, vSL takes %s expr's time (bar %.1f×)", fmtRatio(base/ex), exprBar))
			}
		}
		if len(met) == 0 {
			met = append(met, "yes")
		}
		for _, e := range engines.Engines[1:] {
			if v, n := rs.median(benchName(wl, e), "ns/op"); n > 0 && v < base {
				faster = append(faster, fmt.Sprintf("%s on %s (vSL takes %s its time)", engines.Names[e], wl.Name, fmtRatio(base/v)))
			}
		}
		t.add(wl.Title, engines.Names[best], fmtRatio(bestNS/base), fmtCell(ne > 0, fmtRatio(ex/base)), strings.Join(met, "; "))
	}
	fmt.Fprintf(w, "%s\n", t)
	if len(misses) == 0 {
		fmt.Fprintf(w, "**Target met on every workload in this run.**")
	} else {
		fmt.Fprintf(w, "**Target not met in this run**: %s.", strings.Join(misses, "; "))
	}
	if len(faster) == 0 {
		fmt.Fprintf(w, " No engine is faster than vSL on any workload.\n\n")
	} else {
		fmt.Fprintf(w, " Faster than vSL: %s. The notes below say why.\n\n", strings.Join(faster, "; "))
	}
}

func names(es []string) string {
	var s []string
	for _, e := range es {
		s = append(s, engines.Names[e])
	}
	return strings.Join(s, ", ")
}

// milterSection writes a table per benchmark function of the milter
// session benchmarks, with a column per unit it reported.
func milterSection(w io.Writer, cmd string, rs *results) {
	fmt.Fprintf(w, "## Milter sessions\n\n")
	fmt.Fprintf(w, "go-milter's client runs whole sessions (connect, helo, mail, three recipients, four header fields, "+
		"a 4 KiB body, end of message) against **vsl** (vsl-milter with the Doe family rules of `contrib/examples`) "+
		"and **noop** (a go-milter server whose milter does nothing, every event negotiated). "+
		"**ratio** runs both alternately; `vsl/noop-throughput` 1.0 means as fast as the no-op server. ")
	if cmd != "" {
		fmt.Fprintf(w, "In the repository root: `%s`. ", cmd)
	}
	fmt.Fprintf(w, "Medians of %s.\n\n", plural(rs.runs(), "run", "runs"))
	var funcs []string
	byFunc := map[string][]string{}
	for _, n := range rs.names {
		fn, _, _ := strings.Cut(n, "/")
		if byFunc[fn] == nil {
			funcs = append(funcs, fn)
		}
		byFunc[fn] = append(byFunc[fn], n)
	}
	for _, fn := range funcs {
		var units []string
		seen := map[string]bool{}
		for _, n := range byFunc[fn] {
			for _, u := range rs.units[n] {
				if !seen[u] {
					seen[u] = true
					units = append(units, u)
				}
			}
		}
		t := &table{head: []string{strings.TrimPrefix(fn, "Benchmark")}, align: []byte{'l'}}
		for _, u := range units {
			t.head = append(t.head, u)
			t.align = append(t.align, 'r')
		}
		for _, n := range byFunc[fn] {
			_, sub, _ := strings.Cut(n, "/")
			row := []string{sub}
			for _, u := range units {
				v, k := rs.median(n, u)
				row = append(row, fmtCell(k > 0, fmtUnit(u, v)))
			}
			t.add(row...)
		}
		fmt.Fprintf(w, "%s\n", t)
	}
}
