package config

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "200ms", want: 200 * time.Millisecond},
		{in: "5s", want: 5 * time.Second},
		{in: "5m", want: 5 * time.Minute},
		{in: "5min", want: 5 * time.Minute},
		{in: "5minutes", want: 5 * time.Minute},
		{in: "1h", want: time.Hour},
		{in: "1d", want: 24 * time.Hour},
		{in: "2w", want: 14 * 24 * time.Hour},
		{in: "1h 30m", want: 90 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: " 10s ", want: 10 * time.Second},
		{in: "17nsec", want: 17},
		{in: "3us", want: 3 * time.Microsecond},
		{in: "3µs", want: 3 * time.Microsecond},
		{in: "1M", want: 2_630_016 * time.Second},
		{in: "1y", want: 31_557_600 * time.Second},
		{in: "0s", want: 0},

		{in: "", err: "empty"},
		{in: "5 minutes", err: "a number and its unit must not be separated by a space"},
		{in: "5", err: "missing unit after 5"},
		{in: "1h 30", err: "missing unit after 30"},
		{in: "5parsecs", err: `unknown unit "parsecs"`},
		{in: "soon", err: `expected a number at "soon"`},
		{in: "-5s", err: `expected a number at "-5s"`},
		{in: "1.5h", err: `fractions are not allowed; combine units instead, as in "1h 30m"`},
		{in: "5s,", err: `expected a number at ","`},
		{in: "300y", err: "too large"},
		{in: "99999999999999999999s", err: "too large"},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("parseDuration(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
}
