package delivery

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/vsl-milter/vsl-milter/policy"
)

// fixedTime is the clock of test agents: a Tuesday.
var fixedTime = time.Date(2024, 3, 5, 14, 7, 9, 123456000, time.UTC)

// testMsg has lines an mbox must quote, one already quoted, and a line
// starting with a dot (dot-stuffed in SMTP, plain on disk).
const testMsg = "From: Alice <alice@example.org>\r\n" +
	"To: bob@example.com\r\n" +
	"Subject: hi\r\n" +
	"\r\n" +
	"Hello Bob.\r\n" +
	"From here on, quoting.\r\n" +
	">From already quoted\r\n" +
	".dot line\r\n"

// newTestAgent returns an agent with the fixed clock.
func newTestAgent(t testing.TB, opts Options) *Agent {
	t.Helper()
	if opts.Hostname == "" {
		opts.Hostname = "mx.test"
	}
	a, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	a.now = func() time.Time { return fixedTime }
	return a
}

func addr(s string) policy.MailAddr { return policy.ParseMailAddr(s) }

func choice(rcpt string, t policy.Transport, target string) policy.DeliveryChoice {
	return policy.DeliveryChoice{Rcpt: addr(rcpt), Transport: t, Target: target}
}

// listDir returns the names in dir, sorted; nil when dir does not exist.
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// allFiles returns every path below dir, relative to it, sorted.
func allFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// failureOf returns the only failure of err, which must be an *Error with
// one failure.
func failureOf(t testing.TB, err error) Failure {
	t.Helper()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if len(e.Failures) != 1 {
		t.Fatalf("want one failure, got %d: %v", len(e.Failures), err)
	}
	return e.Failures[0]
}
