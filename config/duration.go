package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// durationUnit gives the length of one humantime unit, or 0 for an unknown
// unit. The spellings are those of the humantime crate that vSMTP uses
// (months are 30.44 days and years 365.25 days, as there).
func durationUnit(u string) time.Duration {
	switch u {
	case "ns", "nsec", "nanos":
		return time.Nanosecond
	case "us", "µs", "usec":
		return time.Microsecond
	case "ms", "msec", "millis":
		return time.Millisecond
	case "s", "sec", "secs", "second", "seconds":
		return time.Second
	case "m", "min", "mins", "minute", "minutes":
		return time.Minute
	case "h", "hr", "hrs", "hour", "hours":
		return time.Hour
	case "d", "day", "days":
		return 24 * time.Hour
	case "w", "week", "weeks":
		return 7 * 24 * time.Hour
	case "M", "month", "months":
		return 2_630_016 * time.Second
	case "y", "year", "years":
		return 31_557_600 * time.Second
	}
	return 0
}

// parseDuration reads a duration written the vSMTP way: one or more
// number-unit pairs such as "200ms", "5s", "5m", "1h", "1d" or "1h 30m"
// (pairs may be separated by spaces). Unlike humantime it refuses a space
// between a number and its unit ("5 minutes"), and it has no fractions.
func parseDuration(s string) (time.Duration, error) {
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, errors.New("empty")
	}
	var total time.Duration
	for rest != "" {
		digits := leading(rest, func(r rune) bool { return r >= '0' && r <= '9' })
		if digits == "" {
			return 0, fmt.Errorf("expected a number at %q", rest)
		}
		rest = rest[len(digits):]
		if strings.HasPrefix(rest, ".") {
			return 0, errors.New(`fractions are not allowed; combine units instead, as in "1h 30m"`)
		}
		unit := leading(rest, isLetter)
		if unit == "" {
			if after := strings.TrimLeft(rest, " \t"); after != rest && after != "" && leading(after, isLetter) != "" {
				return 0, errors.New("a number and its unit must not be separated by a space")
			}
			return 0, fmt.Errorf("missing unit after %s", digits)
		}
		rest = strings.TrimLeft(rest[len(unit):], " \t")
		size := durationUnit(unit)
		if size == 0 {
			return 0, fmt.Errorf("unknown unit %q", unit)
		}
		n, ok := atoiChecked(digits)
		if !ok || n > int64(math.MaxInt64/size) || total > math.MaxInt64-time.Duration(n)*size {
			return 0, errors.New("too large")
		}
		total += time.Duration(n) * size
	}
	return total, nil
}

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == 'µ' }

// leading returns the longest prefix of s whose runes all satisfy ok.
func leading(s string, ok func(rune) bool) string {
	for i, r := range s {
		if !ok(r) {
			return s[:i]
		}
	}
	return s
}

// atoiChecked converts a string of ASCII digits, reporting overflow.
func atoiChecked(digits string) (int64, bool) {
	var n int64
	for _, c := range digits {
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
