package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vsl-milter/vsl-milter/policy"
)

func TestMboxGolden(t *testing.T) {
	root := t.TempDir()
	a := newTestAgent(t, Options{MboxRoot: root})
	rcpts := []policy.DeliveryChoice{choice("bob@Example.COM", policy.Mbox, "")}
	if err := a.Deliver(context.Background(), []byte(testMsg), addr("<alice@example.org>"), rcpts); err != nil {
		t.Fatal(err)
	}
	// No final line end: the mbox adds one before its empty line.
	if err := a.Deliver(context.Background(), []byte("Subject: bounce\r\n\r\nFrom x"), policy.MailAddr{Null: true}, rcpts); err != nil {
		t.Fatal(err)
	}
	const want = "From alice@example.org Tue Mar  5 14:07:09 2024\n" +
		"Return-Path: <alice@example.org>\n" +
		"Delivered-To: bob@Example.COM\n" +
		"From: Alice <alice@example.org>\n" +
		"To: bob@example.com\n" +
		"Subject: hi\n" +
		"\n" +
		"Hello Bob.\n" +
		">From here on, quoting.\n" +
		">>From already quoted\n" +
		".dot line\n" +
		"\n" +
		"From MAILER-DAEMON Tue Mar  5 14:07:09 2024\n" +
		"Return-Path: <>\n" +
		"Delivered-To: bob@Example.COM\n" +
		"Subject: bounce\n" +
		"\n" +
		">From x\n" +
		"\n"
	path := filepath.Join(root, "example.com", "bob")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("mbox:\n%s\nwant:\n%s", got, want)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode())
	}
}

// TestMboxSeparator checks that a copy appended to an mbox another program
// left without its final empty line still starts after an empty line.
func TestMboxSeparator(t *testing.T) {
	for _, tc := range []struct{ old, sep string }{
		{"", ""},
		{"From a Mon Jan  1 00:00:00 2024\n\nbody\n\n", ""},
		{"From a Mon Jan  1 00:00:00 2024\n\nbody\n", "\n"},
		{"From a Mon Jan  1 00:00:00 2024\n\nbody", "\n\n"},
		{"\n", "\n"},
	} {
		root := t.TempDir()
		path := filepath.Join(root, "example.com", "bob")
		if tc.old != "" {
			os.Mkdir(filepath.Dir(path), 0o700)
			if err := os.WriteFile(path, []byte(tc.old), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		a := newTestAgent(t, Options{MboxRoot: root})
		if err := a.Deliver(context.Background(), []byte("S: x\r\n\r\ny\r\n"), addr("a@b"),
			[]policy.DeliveryChoice{choice("bob@example.com", policy.Mbox, "")}); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		want := tc.old + tc.sep + "From a@b Tue Mar  5 14:07:09 2024\nReturn-Path: <a@b>\nDelivered-To: bob@example.com\nS: x\n\ny\n\n"
		if string(got) != want {
			t.Errorf("after %q:\n%q\nwant\n%q", tc.old, got, want)
		}
	}
}

// parseMboxrd splits an mboxrd file into its messages (From line dropped,
// quoting undone, final empty line dropped), checking its structure.
func parseMboxrd(t *testing.T, data []byte) []string {
	t.Helper()
	var msgs []string
	var cur []string
	lines := strings.SplitAfter(string(data), "\n")
	if lines[len(lines)-1] != "" {
		t.Fatalf("mbox does not end with a line end")
	}
	lines = lines[:len(lines)-1]
	flush := func() {
		if cur == nil {
			return
		}
		if n := len(cur); n == 0 || cur[n-1] != "\n" {
			t.Fatalf("message %d does not end with an empty line", len(msgs))
		}
		msgs = append(msgs, strings.Join(cur[:len(cur)-1], ""))
	}
	for i, l := range lines {
		if strings.HasPrefix(l, "From ") {
			if i > 0 && lines[i-1] != "\n" {
				t.Fatalf("line %d: From line not after an empty line", i+1)
			}
			flush()
			cur = []string{}
			continue
		}
		if cur == nil {
			t.Fatalf("line %d: data before the first From line", i+1)
		}
		if strings.HasPrefix(strings.TrimLeft(l, ">"), "From ") {
			l = l[1:]
		}
		cur = append(cur, l)
	}
	flush()
	return msgs
}

// TestMboxConcurrent appends from 20 goroutines at once, messages large
// enough to be written in several pieces if nothing serialised them, and
// parses the result.
func TestMboxConcurrent(t *testing.T) {
	root := t.TempDir()
	a := newTestAgent(t, Options{MboxRoot: root})
	const n = 20
	var want []string
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		var body strings.Builder
		fmt.Fprintf(&body, "Subject: message %d\r\n\r\n", i)
		for j := range 2000 {
			fmt.Fprintf(&body, "message %d line %d\r\n", i, j)
			if j%100 == 0 {
				fmt.Fprintf(&body, "From line %d of %d\r\n>From quoted\r\n", j, i)
			}
		}
		msg := body.String()
		want = append(want, "Return-Path: <a@b>\nDelivered-To: bob@example.com\n"+strings.ReplaceAll(msg, "\r\n", "\n"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a.Deliver(context.Background(), []byte(msg), addr("a@b"),
				[]policy.DeliveryChoice{choice("bob@example.com", policy.Mbox, "")})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(root, "example.com", "bob"))
	if err != nil {
		t.Fatal(err)
	}
	got := parseMboxrd(t, data)
	if len(got) != n {
		t.Fatalf("mbox holds %d messages, want %d", len(got), n)
	}
	sort.Strings(got)
	sort.Strings(want)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d differs (interleaved or mangled):\n%.300q\nwant\n%.300q", i, got[i], want[i])
		}
	}
}

// TestMboxRollback makes the append fail after it was written and checks
// the file is back to its old bytes.
func TestMboxRollback(t *testing.T) {
	root := t.TempDir()
	a := newTestAgent(t, Options{MboxRoot: root})
	rcpts := []policy.DeliveryChoice{choice("bob@example.com", policy.Mbox, "")}
	if err := a.Deliver(context.Background(), []byte(testMsg), addr("a@b"), rcpts); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "example.com", "bob")
	before, _ := os.ReadFile(path)

	ioErr := errors.New("input/output error")
	var sawSize int64
	a.hook = func(point, p string) error {
		st, _ := os.Stat(p)
		sawSize = st.Size()
		return ioErr
	}
	err := a.Deliver(context.Background(), []byte(testMsg), addr("a@b"), rcpts)
	f := failureOf(t, err)
	if !f.Temporary || f.Transport != policy.Mbox || f.Dest != path || !errors.Is(err, ioErr) {
		t.Errorf("failure %+v", f)
	}
	if sawSize <= int64(len(before)) {
		t.Errorf("the hook saw %d bytes: the copy was not written before it", sawSize)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Errorf("mbox changed by a failed append:\n%q\nwas\n%q", after, before)
	}
}

// TestMboxLockTimeout holds the mbox lock as another process would and
// checks that a delivery waits, gives up when its context ends, and leaves
// the file alone.
func TestMboxLockTimeout(t *testing.T) {
	root := t.TempDir()
	a := newTestAgent(t, Options{MboxRoot: root})
	rcpts := []policy.DeliveryChoice{choice("bob@example.com", policy.Mbox, "")}
	if err := a.Deliver(context.Background(), []byte(testMsg), addr("a@b"), rcpts); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "example.com", "bob")
	before, _ := os.ReadFile(path)

	holder, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if ok, err := tryLock(holder); !ok || err != nil {
		t.Fatalf("tryLock = %v, %v", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = a.Deliver(ctx, []byte(testMsg), addr("a@b"), rcpts)
	f := failureOf(t, err)
	if !f.Temporary || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "lock") {
		t.Errorf("failure: %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Errorf("gave up after %v, want about 150ms", d)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Errorf("mbox changed while locked")
	}

	// Released: the next delivery goes through.
	holder.Close()
	if err := a.Deliver(context.Background(), []byte(testMsg), addr("a@b"), rcpts); err != nil {
		t.Fatal(err)
	}
	after, _ = os.ReadFile(path)
	if got := len(parseMboxrd(t, after)); got != 2 {
		t.Errorf("%d messages after the lock was released, want 2", got)
	}
}

func TestMboxSymlinkRefused(t *testing.T) {
	root := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("keep\n"), 0o600)
	os.Mkdir(filepath.Join(root, "example.com"), 0o700)
	if err := os.Symlink(victim, filepath.Join(root, "example.com", "bob")); err != nil {
		t.Fatal(err)
	}
	a := newTestAgent(t, Options{MboxRoot: root})
	err := a.Deliver(context.Background(), []byte(testMsg), addr("a@b"),
		[]policy.DeliveryChoice{choice("bob@example.com", policy.Mbox, "")})
	if err == nil {
		t.Fatal("delivered through a symbolic link")
	}
	if got, _ := os.ReadFile(victim); string(got) != "keep\n" {
		t.Errorf("the link's target was written: %q", got)
	}
}
