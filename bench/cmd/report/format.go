package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// fmtTime renders nanoseconds with three significant digits in the unit
// that suits them: 95.3 ns, 1.23 µs, 8.39 ms, 1.20 s.
func fmtTime(ns float64) string {
	switch {
	case ns < 1e3:
		return sig3(ns) + " ns"
	case ns < 1e6:
		return sig3(ns/1e3) + " µs"
	case ns < 1e9:
		return sig3(ns/1e6) + " ms"
	}
	return sig3(ns/1e9) + " s"
}

// sig3 renders x with three significant digits, without an exponent.
func sig3(x float64) string {
	if x == 0 {
		return "0"
	}
	digits := 3 - int(math.Floor(math.Log10(math.Abs(x)))) - 1
	if digits < 0 {
		digits = 0
	}
	return strconv.FormatFloat(x, 'f', digits, 64)
}

// fmtCount renders a count (bytes, allocations) as an integer with
// thousands separators: 1,597,974.
func fmtCount(x float64) string {
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtRatio renders a ratio with two decimals below 10 (three near 1, so
// that a near tie still shows a side: 0.996×, 1.004×), one up to 100 and
// none above: 3.66×, 12.4×, 104×.
func fmtRatio(r float64) string {
	switch {
	case r > 0.98 && r < 1.02:
		return strconv.FormatFloat(r, 'f', 3, 64) + "×"
	case r >= 100:
		return strconv.FormatFloat(r, 'f', 0, 64) + "×"
	case r >= 10:
		return strconv.FormatFloat(r, 'f', 1, 64) + "×"
	}
	return strconv.FormatFloat(r, 'f', 2, 64) + "×"
}

// fmtUnit renders a value of a benchmark unit: times as times, bytes and
// allocations as counts, anything else (custom metrics) with four
// significant digits.
func fmtUnit(unit string, v float64) string {
	switch unit {
	case "ns/op":
		return fmtTime(v)
	case "B/op", "allocs/op":
		return fmtCount(v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// table is a markdown table: a header row, an alignment per column ('l'
// or 'r') and rows.
type table struct {
	head  []string
	align []byte
	rows  [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) String() string {
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + strings.ReplaceAll(c, "|", `\|`) + " |")
		}
		b.WriteString("\n")
	}
	line(t.head)
	b.WriteString("|")
	for i := range t.head {
		if i < len(t.align) && t.align[i] == 'r' {
			b.WriteString("---:|")
		} else {
			b.WriteString("---|")
		}
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		line(r)
	}
	return b.String()
}

// fmtCell is a table cell for a value that may be missing.
func fmtCell(ok bool, s string) string {
	if !ok {
		return "—"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
