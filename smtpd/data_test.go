package smtpd_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// dataTimeoutTOML sets timeout_client.data.
func dataTimeoutTOML(d time.Duration) string {
	return fmt.Sprintf("[server.smtp.timeout_client]\ndata = %q\n", d.String())
}

// startData opens a session and gets to the message (after the 354).
func startData(t *testing.T, h *harness, mail string) *rawClient {
	t.Helper()
	c := dialRaw(t, h.addr)
	c.expect("220 mx.example.com Service ready")
	c.send("HELO client.example", mail, "RCPT TO:<jane@example.org>", "DATA")
	c.expect("250 Ok", "250 Ok", "250 Ok", "354 Start mail input; end with <CRLF>.<CRLF>")
	return c
}

// queuedMessage returns the one message queued, without the Received
// field the server added on top.
func queuedMessage(t *testing.T, h *harness) string {
	t.Helper()
	q := h.queue.all()
	if len(q) != 1 {
		t.Fatalf("queued %d messages, want 1", len(q))
	}
	_, msg, ok := strings.Cut(q[0].message, "\r\n\tby "+testDomain)
	if !ok {
		t.Fatalf("no Received field on top of %q", q[0].message)
	}
	_, msg, _ = strings.Cut(msg, "\r\n")
	_, msg, _ = strings.Cut(msg, "\r\n") // the date line
	return msg
}

// TestDataSlowLines sends a message line by line, each line well within
// timeout_client.data but the whole message over several times it: the
// timeout applies to each wait, not to the message.
func TestDataSlowLines(t *testing.T) {
	const timeout = 500 * time.Millisecond
	h := newHarness(t, "", setup{toml: dataTimeoutTOML(timeout)})
	c := startData(t, h, "MAIL FROM:<joe@example.com>")
	var want strings.Builder
	start := time.Now()
	for i := range 12 {
		line := fmt.Sprintf("X-Line-%d: slow", i)
		if i == 11 {
			line = ""
		}
		c.send(line)
		want.WriteString(line + "\r\n")
		time.Sleep(timeout / 5)
	}
	c.send("body", ".")
	want.WriteString("body\r\n")
	if elapsed := time.Since(start); elapsed < 2*timeout {
		t.Fatalf("the message took %v, want more than %v", elapsed, 2*timeout)
	}
	c.expect("250 Ok")
	if got := queuedMessage(t, h); got != want.String() {
		t.Errorf("message %q, want %q", got, want.String())
	}
}

// TestDataSlowPartialLine sends a line in two parts: the first after a
// wait of most of the timeout, with a whole line before it, the second
// most of the timeout later. Each wait is within the timeout, so the
// client is not cut off (the deadline is renewed when the server waits
// for the rest of the line, not only when its buffer is empty).
func TestDataSlowPartialLine(t *testing.T) {
	const timeout = 500 * time.Millisecond
	h := newHarness(t, "", setup{toml: dataTimeoutTOML(timeout)})
	c := startData(t, h, "MAIL FROM:<joe@example.com>")
	time.Sleep(timeout * 7 / 10)
	c.sendRaw("Subject: partial\r\nFrom: joe@exa")
	time.Sleep(timeout * 7 / 10)
	c.sendRaw("mple.com\r\n\r\nbody\r\n.\r\n")
	c.expect("250 Ok")
	if got, want := queuedMessage(t, h), "Subject: partial\r\nFrom: joe@example.com\r\n\r\nbody\r\n"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

// TestDataStalled stops sending in the middle of the message: after
// timeout_client.data the client is told Timeout and dropped, and
// nothing is queued.
func TestDataStalled(t *testing.T) {
	for _, tc := range []struct{ name, sent string }{
		{"after a line", "Subject: stalled\r\n\r\nbody\r\n"},
		{"in a line", "Subject: stalled\r\n\r\nbo"},
		{"before the end", "Subject: stalled\r\n\r\nbody\r\n.\r"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			const timeout = 300 * time.Millisecond
			h := newHarness(t, "", setup{toml: dataTimeoutTOML(timeout)})
			c := startData(t, h, "MAIL FROM:<joe@example.com>")
			c.sendRaw(tc.sent)
			sent := time.Now()
			c.expect("451 Timeout - closing connection")
			if waited := time.Since(sent); waited < timeout*9/10 {
				t.Errorf("cut off after %v, want %v", waited, timeout)
			}
			c.expectClosed()
			h.waitClosed()
			if q := h.queue.all(); len(q) != 0 {
				t.Errorf("queued %v", q)
			}
		})
	}
}

// TestDataDeclaredSize sends messages whose MAIL FROM declares a size
// larger or smaller than the message, or none: the server's buffer, sized
// from it, never changes the message.
func TestDataDeclaredSize(t *testing.T) {
	line := strings.Repeat("x", 76) + "\r\n"
	big := "Subject: big\r\n\r\n" + strings.Repeat(line, 100<<10/len(line))
	for _, tc := range []struct {
		name, mail, msg string
	}{
		{"no SIZE", "MAIL FROM:<joe@example.com>", big},
		{"exact SIZE", fmt.Sprintf("MAIL FROM:<joe@example.com> SIZE=%d", len(big)), big},
		{"SIZE too small", "MAIL FROM:<joe@example.com> SIZE=10", big},
		{"SIZE too large", "MAIL FROM:<joe@example.com> SIZE=9000000", "Subject: small\r\n\r\nbody\r\n"},
		{"SIZE=0", "MAIL FROM:<joe@example.com> SIZE=0", "Subject: empty\r\n\r\n"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, "", setup{})
			c := startData(t, h, tc.mail)
			c.sendRaw(tc.msg + ".\r\n")
			c.expect("250 Ok")
			if got := queuedMessage(t, h); got != tc.msg {
				t.Errorf("message of %d bytes, want %d", len(got), len(tc.msg))
			}
		})
	}
}

// BenchmarkData100KiB measures sessions sending a 100 KiB message each,
// from several clients at once.
func BenchmarkData100KiB(b *testing.B) {
	h := newHarness(b, "", setup{})
	line := strings.Repeat("x", 76) + "\r\n"
	msg := "Subject: bench\r\n\r\n" + strings.Repeat(line, 100<<10/len(line)) + ".\r\n"
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := dialRaw(b, h.addr)
		c.expect("220 mx.example.com Service ready")
		c.send("HELO client.example")
		c.expect("250 Ok")
		for pb.Next() {
			c.send("MAIL FROM:<joe@example.com>", "RCPT TO:<jane@example.org>", "DATA")
			c.expect("250 Ok", "250 Ok", "354 Start mail input; end with <CRLF>.<CRLF>")
			c.sendRaw(msg)
			c.expect("250 Ok")
		}
		c.send("QUIT")
		c.expect("221 Service closing transmission channel")
	})
}

// TestMailLoop refuses a message that has been through more than 100
// servers (RFC 5321 §6.3) with 554 5.4.6, and takes one that has been
// through 100; the session goes on after the refusal.
func TestMailLoop(t *testing.T) {
	h := newHarness(t, "", setup{})
	c := startData(t, h, "MAIL FROM:<joe@example.com>")
	received := func(n int) {
		for i := range n {
			c.send(fmt.Sprintf("received: from hop%d.example by hop%d.example; Wed, 25 Nov 2026 13:00:00 +0000", i, i+1))
		}
	}
	received(101)
	c.send("Subject: loop", "", "body", ".")
	c.expect("554 5.4.6 Too many hops: mail loop detected")
	if n := len(h.queue.all()); n != 0 {
		t.Fatalf("a looping message was queued (%d)", n)
	}
	c.send("MAIL FROM:<joe@example.com>", "RCPT TO:<jane@example.org>", "DATA")
	c.expect("250 Ok", "250 Ok", "354 Start mail input; end with <CRLF>.<CRLF>")
	received(100)
	c.send("Subject: far", "", "body", ".")
	c.expect("250 Ok")
	if n := len(h.queue.all()); n != 1 {
		t.Fatalf("queued %d messages, want 1", n)
	}
}
