package delivery

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		err  string // "" when valid
	}{
		{Options{MaildirRoot: "/var/mail", MboxRoot: "/var/spool/mail", Hostname: "mx"}, ""},
		{Options{}, ""},
		{Options{MaildirRoot: "mail"}, "not an absolute path"},
		{Options{MboxRoot: "./mail"}, "not an absolute path"},
		{Options{ForwardTimeout: -time.Second}, "negative forward timeout"},
		{Options{Hostname: "mx example"}, "spaces or control characters"},
		{Options{Hostname: "mx\r\nMAIL FROM:<x>"}, "spaces or control characters"},
	} {
		a, err := New(tc.opts)
		if tc.err == "" {
			if err != nil {
				t.Errorf("New(%+v): %v", tc.opts, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("New(%+v) = %v, want an error with %q", tc.opts, err, tc.err)
		}
		if a != nil {
			t.Errorf("New returned an agent with an error")
		}
	}

	a, err := New(Options{MaildirRoot: "/var/mail/"})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if a.opts.ForwardTimeout != DefaultForwardTimeout || a.opts.Hostname != host || a.opts.MaildirRoot != "/var/mail" {
		t.Errorf("defaults: %+v", a.opts)
	}
}
