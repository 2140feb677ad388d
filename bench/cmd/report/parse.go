package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// results are the samples of `go test -bench` output: for each benchmark
// (named without the -GOMAXPROCS suffix), the values of each unit, one per
// run (-count).
type results struct {
	cpu     string              // the "cpu:" header line, if any
	passes  int                 // how many "pkg:" headers: the number of test binary runs
	names   []string            // benchmark names in order of first appearance
	units   map[string][]string // each benchmark's units in order of appearance
	samples map[string]map[string][]float64
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// parseBench reads `go test -bench` output. Lines other than benchmark
// results and the cpu header are ignored; a malformed result line is an
// error, so a format change cannot silently empty a table.
func parseBench(r io.Reader) (*results, error) {
	rs := &results{units: map[string][]string{}, samples: map[string]map[string][]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if c, ok := strings.CutPrefix(line, "cpu: "); ok && rs.cpu == "" {
			rs.cpu = strings.TrimSpace(c)
			continue
		}
		if strings.HasPrefix(line, "pkg: ") {
			rs.passes++
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue // a benchmark name printed alone, before its sub-benchmarks or a failure
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // not a result line ("BenchmarkX --- FAIL", logs)
		}
		if len(f) < 4 || len(f)%2 != 0 {
			return nil, fmt.Errorf("line %d: malformed result %q", n, line)
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		if rs.samples[name] == nil {
			rs.names = append(rs.names, name)
			rs.samples[name] = map[string][]float64{}
		}
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %q: %w", n, f[i], err)
			}
			unit := f[i+1]
			if _, seen := rs.samples[name][unit]; !seen {
				rs.units[name] = append(rs.units[name], unit)
			}
			rs.samples[name][unit] = append(rs.samples[name][unit], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return rs, nil
}

// median returns the median of the benchmark's values in unit and the
// number of samples (0 when there are none).
func (rs *results) median(name, unit string) (float64, int) {
	v := rs.samples[name][unit]
	return median(v), len(v)
}

// runs returns the largest number of samples of any benchmark.
func (rs *results) runs() int {
	n := 0
	for _, byUnit := range rs.samples {
		for _, v := range byUnit {
			n = max(n, len(v))
		}
	}
	return n
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
