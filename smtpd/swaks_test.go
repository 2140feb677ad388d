package smtpd_test

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// swaks runs the swaks SMTP client against h with args and returns the
// server's lines of its transcript ("<-" in clear text, "<~" under TLS,
// "<**" for an error reply) and whether swaks succeeded.
func swaks(t *testing.T, h *harness, args ...string) (serverLines []string, ok bool) {
	t.Helper()
	path, err := exec.LookPath("swaks")
	if err != nil {
		if os.Getenv("VSL_E2E") == "1" {
			t.Fatal("swaks is not installed (VSL_E2E=1 requires it)")
		}
		t.Skip("swaks is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args = append([]string{"--server", h.addr, "--helo", "client.example", "--timeout", "10"}, args...)
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		for _, p := range []string{"<-  ", "<~  ", "<** ", "<~* "} {
			if s, found := strings.CutPrefix(l, p); found {
				serverLines = append(serverLines, s)
			}
		}
	}
	t.Logf("swaks %s\n%s", strings.Join(args, " "), out)
	return serverLines, err == nil
}

// TestSwaks sends with swaks over STARTTLS with AUTH PLAIN, and checks
// every line the server sent.
func TestSwaks(t *testing.T) {
	h := newHarness(t, authRules, setup{toml: tlsTOML("Encrypt") + "[server.smtp.auth]\nmust_be_authenticated = true\n"})
	got, ok := swaks(t, h, "--tls", "--auth", "PLAIN", "--auth-user", "joe", "--auth-password", "secret",
		"--from", "joe@example.com", "--to", "jane@example.org", "--header", "Subject: from swaks", "--body", "hello")
	if !ok {
		t.Error("swaks failed")
	}
	want := []string{
		"220 mx.example.com Service ready",
		"250-mx.example.com", "250-PIPELINING", "250-SIZE 10000000", "250-8BITMIME", "250-SMTPUTF8", "250 STARTTLS",
		"220 TLS go ahead",
		"250-mx.example.com", "250-PIPELINING", "250-SIZE 10000000", "250-8BITMIME", "250-SMTPUTF8", "250 AUTH PLAIN LOGIN",
		"235 2.7.0 Authentication succeeded",
		"250 Ok", "250 Ok",
		"354 Start mail input; end with <CRLF>.<CRLF>",
		"250 Ok",
		"221 Service closing transmission channel",
	}
	if !slices.Equal(got, want) {
		t.Errorf("server lines:\n got %q\nwant %q", got, want)
	}
	q := h.queue.all()
	if len(q) != 1 || q[0].summary() != "enqueue from=<joe@example.com> rcpts=<jane@example.org> authid=joe secured" {
		t.Fatalf("queued %v", q)
	}
	if !strings.Contains(q[0].message, "Subject: from swaks\r\n") || !strings.Contains(q[0].message, "\r\n\r\nhello\r\n") {
		t.Errorf("message:\n%s", q[0].message)
	}
}

// TestSwaksRefusals checks a refused recipient and a deny at preq, as
// swaks sees them.
func TestSwaksRefusals(t *testing.T) {
	h := newHarness(t, `#{
  rcpt: [ rule "unknown" || if rcpt() == "nobody@example.org" { reject("550 5.1.1 no such user") } else { next() } ],
  preq: [ rule "spam" || if get_header("Subject") == "spam" { deny("554 5.7.1 spam refused") } else { next() } ],
}`, setup{})
	got, ok := swaks(t, h, "--from", "joe@example.com", "--to", "nobody@example.org")
	if ok {
		t.Error("swaks succeeded for a refused recipient")
	}
	want := []string{
		"220 mx.example.com Service ready",
		"250-mx.example.com", "250-PIPELINING", "250-SIZE 10000000", "250-8BITMIME", "250 SMTPUTF8",
		"250 Ok",
		"550 5.1.1 no such user",
		"221 Service closing transmission channel",
	}
	if !slices.Equal(got, want) {
		t.Errorf("server lines:\n got %q\nwant %q", got, want)
	}
	got, ok = swaks(t, h, "--from", "joe@example.com", "--to", "jane@example.org", "--header", "Subject: spam")
	if ok {
		t.Error("swaks succeeded for a denied message")
	}
	want = []string{
		"220 mx.example.com Service ready",
		"250-mx.example.com", "250-PIPELINING", "250-SIZE 10000000", "250-8BITMIME", "250 SMTPUTF8",
		"250 Ok", "250 Ok",
		"354 Start mail input; end with <CRLF>.<CRLF>",
		"554 5.7.1 spam refused",
	}
	if !slices.Equal(got, want) {
		t.Errorf("server lines:\n got %q\nwant %q", got, want)
	}
	if q := h.queue.all(); len(q) != 0 {
		t.Errorf("queued %v", q)
	}
}
