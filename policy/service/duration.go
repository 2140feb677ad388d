package service

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// durationUnits maps the unit names ParseDuration accepts to their length:
// Go's units, the day, and the longer spellings vSMTP's duration parser
// (humantime) accepts.
var durationUnits = map[string]time.Duration{
	"ns": time.Nanosecond, "nsec": time.Nanosecond,
	"us": time.Microsecond, "µs": time.Microsecond, "usec": time.Microsecond,
	"ms": time.Millisecond, "msec": time.Millisecond,
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
}

// ParseDuration parses a duration as written in a service declaration: one
// or more numbers, each followed by a unit, optionally separated by spaces.
// It accepts the unsigned forms time.ParseDuration accepts ("60s",
// "200ms", "1h30m", "1.5h"), plus the day ("1d") and the longer
// unit names vSMTP accepted ("2min", "10 secs", "1 day").
func ParseDuration(s string) (time.Duration, error) {
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, fmt.Errorf("invalid duration %q: empty (write e.g. \"10s\", \"200ms\", \"5m\", \"1h\", \"1d\")", s)
	}
	var total time.Duration
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		num := rest[:i]
		if num == "" || strings.Count(num, ".") > 1 || num == "." {
			return 0, fmt.Errorf("invalid duration %q: expected a number at %q (write e.g. \"10s\", \"200ms\", \"5m\", \"1h\", \"1d\")", s, rest)
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := 0
		for j < len(rest) && rest[j] != ' ' && (rest[j] < '0' || rest[j] > '9') && rest[j] != '.' {
			j++
		}
		unitName := rest[:j]
		unit, ok := durationUnits[unitName]
		if !ok {
			if unitName == "" {
				return 0, fmt.Errorf("invalid duration %q: missing unit after %s (one of ms, s, m, h, d)", s, num)
			}
			return 0, fmt.Errorf("invalid duration %q: unknown unit %q (one of ms, s, m, h, d)", s, unitName)
		}
		rest = strings.TrimLeft(rest[j:], " ")
		intPart, fracPart, _ := strings.Cut(num, ".")
		var v float64
		for _, c := range intPart {
			v = v*10 + float64(c-'0')
		}
		scale := 0.1
		for _, c := range fracPart {
			v += float64(c-'0') * scale
			scale /= 10
		}
		d := v * float64(unit)
		if d > math.MaxInt64 || float64(total)+d > math.MaxInt64 {
			return 0, fmt.Errorf("invalid duration %q: too long", s)
		}
		total += time.Duration(d)
	}
	return total, nil
}
