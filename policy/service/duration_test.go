package service

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "60s", want: time.Minute},
		{in: "200ms", want: 200 * time.Millisecond},
		{in: "5m", want: 5 * time.Minute},
		{in: "1h", want: time.Hour},
		{in: "1d", want: 24 * time.Hour},
		{in: "2d12h", want: 60 * time.Hour},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "10 secs", want: 10 * time.Second},
		{in: "2min", want: 2 * time.Minute},
		{in: "1 day 2 hours", want: 26 * time.Hour},
		{in: " 15s ", want: 15 * time.Second},
		{in: "0s", want: 0},
		{in: "", wantErr: `invalid duration "": empty (write e.g. "10s", "200ms", "5m", "1h", "1d")`},
		{in: "soon", wantErr: `invalid duration "soon": expected a number at "soon" (write e.g. "10s", "200ms", "5m", "1h", "1d")`},
		{in: "-5s", wantErr: `invalid duration "-5s": expected a number at "-5s" (write e.g. "10s", "200ms", "5m", "1h", "1d")`},
		{in: "60", wantErr: `invalid duration "60": missing unit after 60 (one of ms, s, m, h, d)`},
		{in: "3 fortnights", wantErr: `invalid duration "3 fortnights": unknown unit "fortnights" (one of ms, s, m, h, d)`},
		{in: "1.2.3s", wantErr: `invalid duration "1.2.3s": expected a number at "1.2.3s" (write e.g. "10s", "200ms", "5m", "1h", "1d")`},
		{in: "999999999999d", wantErr: `invalid duration "999999999999d": too long`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseDuration(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}
