package delivery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/policy"
)

func TestMaildirGolden(t *testing.T) {
	root := t.TempDir()
	a := newTestAgent(t, Options{MaildirRoot: root})
	err := a.Deliver(context.Background(), []byte(testMsg), addr("<alice@example.org>"),
		[]policy.DeliveryChoice{choice("bob@Example.COM", policy.Maildir, "")})
	if err != nil {
		t.Fatal(err)
	}
	const want = "Return-Path: <alice@example.org>\n" +
		"Delivered-To: bob@Example.COM\n" +
		"From: Alice <alice@example.org>\n" +
		"To: bob@example.com\n" +
		"Subject: hi\n" +
		"\n" +
		"Hello Bob.\n" +
		"From here on, quoting.\n" +
		">From already quoted\n" +
		".dot line\n"
	dir := filepath.Join(root, "example.com", "bob")
	if got := listDir(t, dir); strings.Join(got, ",") != "cur,new,tmp" {
		t.Fatalf("maildir holds %v, want cur, new, tmp", got)
	}
	if got := listDir(t, filepath.Join(dir, "tmp")); len(got) != 0 {
		t.Errorf("tmp/ not empty: %v", got)
	}
	news := listDir(t, filepath.Join(dir, "new"))
	if len(news) != 1 {
		t.Fatalf("new/ holds %v, want one file", news)
	}
	nameRE := regexp.MustCompile(fmt.Sprintf(`^%d\.M123456P%dQ1R[0-9a-f]{8}\.mx\.test,S=%d,W=%d$`,
		fixedTime.Unix(), os.Getpid(), len(want), len(want)+strings.Count(want, "\n")))
	if !nameRE.MatchString(news[0]) {
		t.Errorf("file name %q does not match %s", news[0], nameRE)
	}
	path := filepath.Join(dir, "new", news[0])
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("maildir copy:\n%q\nwant:\n%q", got, want)
	}
	for p, mode := range map[string]os.FileMode{
		filepath.Join(root, "example.com"): os.ModeDir | 0o700, dir: os.ModeDir | 0o700,
		filepath.Join(dir, "new"): os.ModeDir | 0o700, path: 0o600,
	} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", p, st.Mode(), mode)
		}
	}

	// A second copy, from the null sender, gets another name.
	if err := a.Deliver(context.Background(), []byte("Subject: bounce\r\n\r\nx\r\n"), policy.MailAddr{Null: true},
		[]policy.DeliveryChoice{choice("bob@example.com", policy.Maildir, "")}); err != nil {
		t.Fatal(err)
	}
	news2 := listDir(t, filepath.Join(dir, "new"))
	if len(news2) != 2 {
		t.Fatalf("new/ holds %v after a second delivery", news2)
	}
	for _, n := range news2 {
		if n == news[0] {
			continue
		}
		got, _ := os.ReadFile(filepath.Join(dir, "new", n))
		if want := "Return-Path: <>\nDelivered-To: bob@example.com\nSubject: bounce\n\nx\n"; string(got) != want {
			t.Errorf("null-sender copy %q, want %q", got, want)
		}
		if !strings.Contains(n, "Q2R") {
			t.Errorf("second file name %q has no Q2", n)
		}
	}
}

// TestMaildirCrashSafety checks the maildir protocol at the moment the
// copy is written but not yet fsynced (what a crash would leave), and
// that a failing write leaves nothing behind.
func TestMaildirCrashSafety(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "example.com", "bob")
	a := newTestAgent(t, Options{MaildirRoot: root})
	rcpts := []policy.DeliveryChoice{choice("bob@example.com", policy.Maildir, "")}

	var sawTmp, sawNew []string
	a.hook = func(point, path string) error {
		if point != "maildir-written" {
			t.Errorf("hook at %s", point)
		}
		sawTmp = listDir(t, filepath.Join(dir, "tmp"))
		sawNew = listDir(t, filepath.Join(dir, "new"))
		return nil
	}
	if err := a.Deliver(context.Background(), []byte(testMsg), addr("a@b"), rcpts); err != nil {
		t.Fatal(err)
	}
	if len(sawTmp) != 1 || len(sawNew) != 0 {
		t.Errorf("while writing: tmp/ %v, new/ %v; want the file in tmp/ only", sawTmp, sawNew)
	}
	if got := listDir(t, filepath.Join(dir, "new")); len(got) != 1 || got[0] != sawTmp[0] {
		t.Errorf("after delivery new/ holds %v, want %v", got, sawTmp)
	}
	if got := listDir(t, filepath.Join(dir, "tmp")); len(got) != 0 {
		t.Errorf("after delivery tmp/ holds %v", got)
	}

	// A failing write: nothing in new/ beyond the first copy, tmp/ clean,
	// a temporary failure naming the recipient, transport and path.
	diskFull := errors.New("no space left on device")
	a.hook = func(point, path string) error { return diskFull }
	err := a.Deliver(context.Background(), []byte(testMsg), addr("a@b"), rcpts)
	f := failureOf(t, err)
	if !f.Temporary || f.Transport != policy.Maildir || f.Dest != dir || !errors.Is(err, diskFull) {
		t.Errorf("failure %+v", f)
	}
	for _, s := range []string{"bob@example.com", "maildir", dir, "temporary"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if got := listDir(t, filepath.Join(dir, "new")); len(got) != 1 {
		t.Errorf("after a failed write new/ holds %v", got)
	}
	if got := listDir(t, filepath.Join(dir, "tmp")); len(got) != 0 {
		t.Errorf("after a failed write tmp/ holds %v", got)
	}
}

func TestMaildirRoot(t *testing.T) {
	base := t.TempDir()
	rcpts := []policy.DeliveryChoice{choice("bob@example.com", policy.Maildir, "")}

	// A missing root is not created: temporary failure.
	missing := filepath.Join(base, "not-mounted")
	a := newTestAgent(t, Options{MaildirRoot: missing})
	f := failureOf(t, a.Deliver(context.Background(), []byte(testMsg), addr("a@b"), rcpts))
	if !f.Temporary || !errors.Is(f.Err, os.ErrNotExist) {
		t.Errorf("missing root: %v", f.Error())
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("root was created")
	}

	// No root configured: temporary failure.
	a = newTestAgent(t, Options{})
	f = failureOf(t, a.Deliver(context.Background(), []byte(testMsg), addr("a@b"), rcpts))
	if !f.Temporary || !errors.Is(f.Err, errNoRoot) {
		t.Errorf("no root: %v", f.Error())
	}
}

func TestMaildirHost(t *testing.T) {
	if got, want := maildirHost("a/b:c,d.example"), `a\057b\072c\054d.example`; got != want {
		t.Errorf("maildirHost = %q, want %q", got, want)
	}
}
