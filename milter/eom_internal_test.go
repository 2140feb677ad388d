package milter

import "testing"

func TestIsSendmail(t *testing.T) {
	for v, want := range map[string]bool{
		"8.18.1":            true,
		"8.15.2/Debian-22":  true,
		"8.14":              true,
		"Postfix 3.7.11":    false,
		"":                  false,
		"8":                 false,
		"8.x.1":             false,
		"18.1.0":            false,
		"Sendmail 8.18.1":   false, // not what Sendmail sends
		"go-milter 0.10.2":  false,
		"8..1":              false,
		"3.7.11 (Postfix?)": false,
	} {
		if got := isSendmail(v); got != want {
			t.Errorf("isSendmail(%q) = %v, want %v", v, got, want)
		}
	}
}
