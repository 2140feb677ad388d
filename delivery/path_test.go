package delivery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/policy"
)

func TestMailboxPath(t *testing.T) {
	const root = "/var/mail"
	for _, tc := range []struct {
		rcpt policy.MailAddr
		want string // "" when the address must fail permanently
	}{
		{addr("bob@example.com"), "/var/mail/example.com/bob"},
		{addr("Bob@EXAMPLE.com."), "/var/mail/example.com/Bob"},
		{addr("../../etc/passwd@example.com"), "/var/mail/example.com/%2E.%2F..%2Fetc%2Fpasswd"},
		{addr("..@example.com"), "/var/mail/example.com/%2E."},
		{addr(".@example.com"), "/var/mail/example.com/%2E"},
		{addr(".hidden@example.com"), "/var/mail/example.com/%2Ehidden"},
		{addr("a/b@example.com"), "/var/mail/example.com/a%2Fb"},
		{addr("a%2Fb@example.com"), "/var/mail/example.com/a%252Fb"},
		{addr("a.b@example.com"), "/var/mail/example.com/a.b"},
		{addr("bob@.."), "/var/mail/%2E/bob"}, // the trailing dot goes first
		{addr("bob@../../etc"), "/var/mail/%2E.%2F..%2Fetc/bob"},
		{addr("bob@a/b"), "/var/mail/a%2Fb/bob"},
		{addr("bob@."), ""}, // empty once the trailing dot is gone
		{addr("bob"), ""},
		{addr("@example.com"), ""},
		{policy.MailAddr{Null: true}, ""},
		{policy.MailAddr{Local: "a\x00b", Domain: "example.com"}, ""},
		{policy.MailAddr{Local: "a\r\nX-Injected: 1", Domain: "example.com"}, ""},
		{policy.MailAddr{Local: "bob", Domain: "exa\x00mple.com"}, ""},
		{policy.MailAddr{Local: strings.Repeat("/", 86), Domain: "example.com"}, ""}, // 258 bytes encoded
		{policy.MailAddr{Local: strings.Repeat("x", 255), Domain: "example.com"}, "/var/mail/example.com/" + strings.Repeat("x", 255)},
	} {
		got, err := mailboxPath(root, policy.Maildir, tc.rcpt)
		if tc.want == "" {
			if err == nil || temporary(err) {
				t.Errorf("%q: got %q, %v; want a permanent error", tc.rcpt, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.rcpt, got, err, tc.want)
		}
	}
}

// TestTraversal delivers to addresses made to climb out of the roots and
// checks that everything written stays inside them.
func TestTraversal(t *testing.T) {
	base := t.TempDir()
	mdRoot, mbRoot := filepath.Join(base, "maildirs"), filepath.Join(base, "mboxes")
	os.Mkdir(mdRoot, 0o700)
	os.Mkdir(mbRoot, 0o700)
	a := newTestAgent(t, Options{MaildirRoot: mdRoot, MboxRoot: mbRoot})
	evil := []string{"../../escape@example.com", "..@..", "x@../..", "../mboxes/y@example.com", "/etc/z@example.com"}
	var rcpts []policy.DeliveryChoice
	for _, r := range evil {
		rcpts = append(rcpts, choice(r, policy.Maildir, ""), choice(r, policy.Mbox, ""))
	}
	if err := a.Deliver(context.Background(), []byte(testMsg), addr("a@b"), rcpts); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, base); strings.Join(got, ",") != "maildirs,mboxes" {
		t.Errorf("written next to the roots: %v", got)
	}
	mboxes := allFiles(t, mbRoot)
	for _, p := range mboxes {
		if strings.Contains("/"+p+"/", "/../") || strings.HasPrefix(p, ".") {
			t.Errorf("mbox path %q", p)
		}
	}
	files := 0
	for _, p := range allFiles(t, mdRoot) {
		if strings.Contains("/"+p+"/", "/../") {
			t.Errorf("maildir path %q", p)
		}
		if strings.Contains(p, "/new/") {
			files++
		}
	}
	if files != len(evil) {
		t.Errorf("%d maildir copies, want %d: %v", files, len(evil), allFiles(t, mdRoot))
	}
	for _, p := range []string{"example.com/%2E.%2F..%2Fescape", "%2E/%2E.", "%2E.%2F./x", "example.com/%2E.%2Fmboxes%2Fy", "example.com/%2Fetc%2Fz"} {
		if _, err := os.Stat(filepath.Join(mbRoot, p)); err != nil {
			t.Errorf("mbox %s: %v", p, err)
		}
	}

	// An address that cannot name a mailbox fails permanently, naming it.
	err := a.Deliver(context.Background(), []byte(testMsg), addr("a@b"),
		[]policy.DeliveryChoice{{Rcpt: policy.MailAddr{Local: "a\x00", Domain: "example.com"}, Transport: policy.Maildir}})
	f := failureOf(t, err)
	if f.Temporary || f.Dest != mdRoot || !strings.Contains(err.Error(), "control characters") {
		t.Errorf("failure: %v", err)
	}
}

func TestSenderWithControlCharacters(t *testing.T) {
	root := t.TempDir()
	a := newTestAgent(t, Options{MaildirRoot: root, MboxRoot: root})
	from := policy.MailAddr{Local: "a\r\nX-Evil: 1", Domain: "example.org"}
	err := a.Deliver(context.Background(), []byte(testMsg), from, []policy.DeliveryChoice{
		choice("bob@example.com", policy.Maildir, ""), choice("carol@example.com", policy.Mbox, ""),
		choice("dave@example.com", policy.Forward, "127.0.0.1:1"),
	})
	var e *Error
	if !errors.As(err, &e) || len(e.Failures) != 3 || e.Temporary() {
		t.Fatalf("got %v, want three permanent failures", err)
	}
	if got := allFiles(t, root); len(got) != 0 {
		t.Errorf("wrote %v", got)
	}
}
