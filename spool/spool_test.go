package spool_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/spool"
)

const maildirRules = `#{ delivery: [ action "local" || maildir_all() ] }`

func TestMaildirDeliveryByteExact(t *testing.T) {
	rules := loadRules(t, maildirRules)
	h := newHarness(t, func(o *spool.Options) { o.Rules = func() *policy.Rules { return rules } })
	// Formatting a re-rendered header would change: no space after a
	// colon, trailing blanks, a tab after the colon.
	msg := "X-Odd:no space  \r\nX-Tab:\tvalue\r\n" + testMsg
	id := h.enqueue(saved("a@example.org", "b@example.net", "C@Example.NET"), msg)
	if st := h.sp.Stats(); st[spool.QueueIncoming] != 1 {
		t.Fatalf("stats after Enqueue: %v", st)
	}
	if ids := h.queueIDs(spool.QueueIncoming); len(ids) != 1 || ids[0] != id {
		t.Fatalf("incoming holds %v, want [%s]", ids, id)
	}
	h.run()
	st := h.waitIdle()
	if st[spool.QueueDead] != 0 {
		t.Fatalf("stats %v: nothing should be dead", st)
	}
	for _, rcpt := range []string{"b@example.net", "C@Example.NET"} {
		got := h.maildirFiles(rcpt)
		want := localCopy("a@example.org", rcpt, msg)
		if len(got) != 1 || got[0] != want {
			t.Errorf("maildir of %s holds %q\nwant one copy %q", rcpt, got, want)
		}
	}
	for _, q := range []string{spool.QueueIncoming, spool.QueueWorking, spool.QueueDeferred, spool.QueueDead, "tmp"} {
		if ids := h.queueIDs(q); len(ids) != 0 {
			t.Errorf("%s still holds %v", q, ids)
		}
	}
}

func TestMXDelivery(t *testing.T) {
	good := newSink(t)
	other := newSink(t)
	// A closed port: the first MX of example.net refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	h := newHarness(t, func(o *spool.Options) {
		o.Resolver = fakeMX{
			// Out of order on purpose: preference decides.
			"example.net": {good.mx(20), {Host: closed, Pref: 10}},
			"example.com": {other.mx(5)},
		}
	})
	h.enqueue(saved("a@example.org", "b@example.net", "c@EXAMPLE.net", "d@example.com"), testMsg)
	h.run()
	if st := h.waitIdle(); st[spool.QueueDead] != 0 {
		t.Fatalf("stats %v", st)
	}
	got := good.messages()
	if len(got) != 1 {
		t.Fatalf("example.net's MX got %d messages, want 1 (one session for the domain)", len(got))
	}
	if got[0].from != "a@example.org" || strings.Join(got[0].to, ",") != "b@example.net,c@EXAMPLE.net" {
		t.Errorf("envelope from %q to %v", got[0].from, got[0].to)
	}
	if !bytes.Equal(got[0].data, []byte(testMsg)) {
		t.Errorf("message changed on the way:\n%q\nwant\n%q", got[0].data, testMsg)
	}
	if o := other.messages(); len(o) != 1 || strings.Join(o[0].to, ",") != "d@example.com" {
		t.Errorf("example.com's MX got %+v", o)
	}
}

// TestMXFallback: a temporary failure at the preferred MX is tried at the
// next one; a permanent failure is final.
func TestMXFallback(t *testing.T) {
	first, second, senderMX := newSink(t), newSink(t), newSink(t)
	first.rcpt = func(_ int, to string) error {
		if strings.HasPrefix(to, "temp@") {
			return reply(451, smtp.EnhancedCode{4, 3, 1}, "disk full")
		}
		return reply(550, smtp.EnhancedCode{5, 1, 1}, "unknown user")
	}
	h := newHarness(t, func(o *spool.Options) {
		o.Resolver = fakeMX{"example.net": {first.mx(10), second.mx(20)}, "example.org": {senderMX.mx(10)}}
	})
	h.enqueue(saved("a@example.org", "temp@example.net", "perm@example.net"), testMsg)
	h.run()
	waitFor(t, 10*time.Second, "the DSN", func() bool { return len(senderMX.messages()) > 0 })
	if st := h.waitIdle(); st[spool.QueueDead] != 1 {
		t.Fatalf("stats %v", st)
	}
	got := second.messages()
	if len(got) != 1 || strings.Join(got[0].to, ",") != "temp@example.net" {
		t.Errorf("the second MX got %+v; want only the temporarily failed recipient", got)
	}
	if n := len(second.attempts()); n != 1 {
		t.Errorf("the second MX saw %d RCPT commands; the permanently failed recipient must not be tried there", n)
	}
	d := parseDSN(t, senderMX.messages()[0].data)
	if len(d.perRcpt) != 1 || d.perRcpt[0].Get("Final-Recipient") != "rfc822; perm@example.net" || d.perRcpt[0].Get("Status") != "5.1.1" {
		t.Errorf("DSN recipients %v", d.perRcpt)
	}
}

func TestRetryThenDeliver(t *testing.T) {
	const period = 150 * time.Millisecond
	s := newSink(t)
	s.rcpt = func(n int, _ string) error {
		if n == 1 {
			return reply(451, smtp.EnhancedCode{4, 7, 1}, "greylisted, try again")
		}
		return nil
	}
	h := newHarness(t, func(o *spool.Options) {
		o.Resolver = fakeMX{"example.net": {s.mx(10)}}
		o.RetryPeriod = period
	})
	h.enqueue(saved("a@example.org", "b@example.net"), testMsg)
	h.run()
	waitFor(t, 10*time.Second, "the message to be deferred", func() bool {
		return h.sp.Stats()[spool.QueueDeferred] == 1 || len(s.messages()) > 0
	})
	if st := h.waitIdle(); st[spool.QueueDead] != 0 {
		t.Fatalf("stats %v", st)
	}
	if got := s.messages(); len(got) != 1 || !bytes.Equal(got[0].data, []byte(testMsg)) {
		t.Fatalf("sink got %d messages, want 1", len(got))
	}
	tries := s.attempts()
	if len(tries) != 2 {
		t.Fatalf("%d attempts, want 2", len(tries))
	}
	if gap := tries[1].Sub(tries[0]); gap < period {
		t.Errorf("retried after %v, before the retry period %v", gap, period)
	}
}

// dsnParts is a parsed delivery status notification.
type dsnParts struct {
	header   mail.Header
	text     string
	perMsg   textproto.MIMEHeader
	perRcpt  []textproto.MIMEHeader
	original string
}

// parseDSN checks the MIME structure of a DSN (RFC 3464, RFC 6522) and
// returns its parts.
func parseDSN(t *testing.T, raw []byte) dsnParts {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("DSN is not a message: %v\n%s", err, raw)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN Content-Type %q (%v)", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []struct {
		ctype string
		body  []byte
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("DSN part: %v", err)
		}
		b, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts = append(parts, struct {
			ctype string
			body  []byte
		}{ct, b})
	}
	if len(parts) != 3 || parts[0].ctype != "text/plain" || parts[1].ctype != "message/delivery-status" || parts[2].ctype != "text/rfc822-headers" {
		var types []string
		for _, p := range parts {
			types = append(types, p.ctype)
		}
		t.Fatalf("DSN parts %v, want text/plain, message/delivery-status, text/rfc822-headers", types)
	}
	d := dsnParts{header: m.Header, text: string(parts[0].body), original: string(parts[2].body)}
	// The delivery-status body: blocks of fields separated by empty lines.
	blocks := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(parts[1].body), "\r\n", "\n")), "\n\n")
	for i, blk := range blocks {
		tp := textproto.NewReader(bufio.NewReader(strings.NewReader(blk + "\n\n")))
		h, err := tp.ReadMIMEHeader()
		if err != nil {
			t.Fatalf("delivery-status block %d: %v\n%s", i, err, blk)
		}
		if i == 0 {
			d.perMsg = h
		} else {
			d.perRcpt = append(d.perRcpt, h)
		}
	}
	return d
}

func TestPermanentFailureDSN(t *testing.T) {
	mx := newSink(t)
	mx.rcpt = func(_ int, to string) error {
		if strings.HasPrefix(to, "nobody@") {
			return reply(550, smtp.EnhancedCode{5, 1, 1}, "no such user here")
		}
		return nil
	}
	senderMX := newSink(t)
	h := newHarness(t, func(o *spool.Options) {
		o.Resolver = fakeMX{"example.net": {mx.mx(10)}, "example.org": {senderMX.mx(10)}}
	})
	id := h.enqueue(saved("a@example.org", "nobody@example.net", "b@example.net"), testMsg)
	h.run()
	waitFor(t, 10*time.Second, "the DSN", func() bool { return len(senderMX.messages()) > 0 })
	st := h.waitIdle()
	if st[spool.QueueDead] != 1 {
		t.Fatalf("stats %v, want the message in dead", st)
	}
	if got := mx.messages(); len(got) != 1 || strings.Join(got[0].to, ",") != "b@example.net" {
		t.Errorf("the good recipient got %+v", got)
	}
	state := h.stateOf(spool.QueueDead, id)
	if state["dsn"] != id+".dsn" {
		t.Errorf("state's dsn %v, want %s.dsn", state["dsn"], id)
	}
	dsns := senderMX.messages()
	if len(dsns) != 1 {
		t.Fatalf("%d DSNs, want 1", len(dsns))
	}
	if dsns[0].from != "" || strings.Join(dsns[0].to, ",") != "a@example.org" {
		t.Errorf("DSN envelope from %q to %v, want <> to a@example.org", dsns[0].from, dsns[0].to)
	}
	d := parseDSN(t, dsns[0].data)
	if from := d.header.Get("From"); !strings.Contains(from, "MAILER-DAEMON@mx.test") {
		t.Errorf("DSN From %q", from)
	}
	if d.header.Get("Auto-Submitted") != "auto-replied" || d.header.Get("In-Reply-To") != "<m1@example.org>" {
		t.Errorf("DSN header %v", d.header)
	}
	if d.perMsg.Get("Reporting-MTA") != "dns; mx.test" || d.perMsg.Get("Arrival-Date") == "" {
		t.Errorf("per-message fields %v", d.perMsg)
	}
	if len(d.perRcpt) != 1 {
		t.Fatalf("%d recipient blocks, want 1 (only the failed one)", len(d.perRcpt))
	}
	r := d.perRcpt[0]
	for field, want := range map[string]string{
		"Final-Recipient": "rfc822; nobody@example.net",
		"Action":          "failed",
		"Status":          "5.1.1",
		"Remote-MTA":      "dns; 127.0.0.1",
		"Diagnostic-Code": "smtp; 550 5.1.1 no such user here",
	} {
		if got := r.Get(field); got != want {
			t.Errorf("%s: %q, want %q", field, got, want)
		}
	}
	if !strings.Contains(d.original, "Subject: spool\r\n test\r\n") || !strings.Contains(d.original, "Message-ID: <m1@example.org>") {
		t.Errorf("original header not returned:\n%s", d.original)
	}
	if strings.Contains(d.original, "Hello Bob") {
		t.Error("the DSN returns the body; only the header is wanted")
	}
	if !strings.Contains(d.text, "<nobody@example.net>") {
		t.Errorf("human-readable part does not name the recipient:\n%s", d.text)
	}
}

func TestTemporaryFailuresGiveUp(t *testing.T) {
	mx := newSink(t)
	mx.rcpt = func(int, string) error { return reply(451, smtp.EnhancedCode{4, 2, 0}, "mailbox busy") }
	senderMX := newSink(t)
	const period = 40 * time.Millisecond
	h := newHarness(t, func(o *spool.Options) {
		o.Resolver = fakeMX{"example.net": {mx.mx(10)}, "example.org": {senderMX.mx(10)}}
		o.RetryMax, o.RetryPeriod = 2, period
	})
	id := h.enqueue(saved("a@example.org", "b@example.net"), testMsg)
	h.run()
	waitFor(t, 10*time.Second, "the DSN", func() bool { return len(senderMX.messages()) > 0 })
	if st := h.waitIdle(); st[spool.QueueDead] != 1 {
		t.Fatalf("stats %v", st)
	}
	tries := mx.attempts()
	if len(tries) != 3 {
		t.Fatalf("%d attempts, want 3 (the first and RetryMax = 2 retries)", len(tries))
	}
	// Backoff: the period, then twice the period.
	if g1, g2 := tries[1].Sub(tries[0]), tries[2].Sub(tries[1]); g1 < period || g2 < 2*period {
		t.Errorf("retry gaps %v, %v; want at least %v, %v", g1, g2, period, 2*period)
	}
	state := h.stateOf(spool.QueueDead, id)
	if state["attempts"] != float64(3) || !strings.Contains(state["dead"].(string), "given up after 3 attempts") {
		t.Errorf("state %v", state)
	}
	d := parseDSN(t, senderMX.messages()[0].data)
	if len(d.perRcpt) != 1 {
		t.Fatalf("recipient blocks %v", d.perRcpt)
	}
	r := d.perRcpt[0]
	if r.Get("Action") != "failed" || r.Get("Status") != "4.2.0" || r.Get("Final-Recipient") != "rfc822; b@example.net" ||
		r.Get("Diagnostic-Code") != "smtp; 451 4.2.0 mailbox busy" {
		t.Errorf("recipient block %v", r)
	}
}

func TestNullSenderGetsNoDSN(t *testing.T) {
	mx := newSink(t)
	mx.rcpt = func(int, string) error { return reply(550, smtp.EnhancedCode{5, 1, 1}, "no") }
	h := newHarness(t, func(o *spool.Options) { o.Resolver = fakeMX{"example.net": {mx.mx(10)}} })
	s := saved("", "b@example.net")
	if !s.MailFrom.Null {
		t.Fatal("test envelope: want the null sender")
	}
	id := h.enqueue(s, testMsg)
	h.run()
	st := h.waitIdle()
	if st[spool.QueueDead] != 1 || st[spool.QueueIncoming] != 0 {
		t.Fatalf("stats %v: want the message dead and no DSN queued", st)
	}
	if ids := h.queueIDs(spool.QueueDead); len(ids) != 1 || ids[0] != id {
		t.Errorf("dead holds %v", ids)
	}
	if state := h.stateOf(spool.QueueDead, id); state["dsn"] != nil {
		t.Errorf("a DSN was sent for the null sender: %v", state["dsn"])
	}
}

func TestQuarantine(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	for _, tc := range []struct{ name, dir string }{
		{"spam", "spam"},
		{"virus.found-2", "virus.found-2"},
		{"../../etc", "_._.._etc"},
		{"..", "_."},
		{"a/b", "a_b"},
		{"", "quarantine"},
		{"nul\x00l", "nul_l"},
	} {
		s := saved("a@example.org", "b@example.net")
		if err := h.sp.Quarantine(ctx, tc.name, s, []byte(testMsg)); err != nil {
			t.Fatalf("Quarantine(%q): %v", tc.name, err)
		}
		dir := filepath.Join(h.opts.AppDir, tc.dir)
		q, err := spool.ReadQuarantined(filepath.Join(dir, s.MessageID+".eml"))
		if err != nil {
			t.Errorf("Quarantine(%q): %v", tc.name, err)
			continue
		}
		if q.Name != tc.name || q.Saved.MailFrom != s.MailFrom || !slices.Equal(q.Saved.Rcpts, s.Rcpts) || q.Saved.MessageID != s.MessageID {
			t.Errorf("Quarantine(%q): envelope name %q, saved %+v", tc.name, q.Name, q.Saved)
		}
		if string(q.Message) != testMsg {
			t.Errorf("Quarantine(%q): %s holds the message %q", tc.name, dir, q.Message)
		}
		// One file per message: no envelope beside it, no temporary file.
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if n := e.Name(); strings.HasSuffix(n, ".json") || strings.HasSuffix(n, ".tmp") || !strings.HasSuffix(n, ".eml") {
				t.Errorf("Quarantine(%q): %s holds %s", tc.name, dir, n)
			}
		}
	}
	// Nothing was written outside AppDir.
	ents, err := os.ReadDir(filepath.Dir(h.opts.AppDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if n := e.Name(); n != "app" && n != "spool" && n != "maildirs" {
			t.Errorf("Quarantine wrote %s outside the application directory", n)
		}
	}
}

func TestRulesAfterQueue(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules string
		check func(t *testing.T, h *harness, mx, senderMX *sink, id string)
	}{{
		name: "postq header, delivery routes",
		rules: `#{
  postq: [ action "tag" || append_header("X-Postq", "yes") ],
  delivery: [ action "route" || maildir("local@example.net") ],
}`,
		check: func(t *testing.T, h *harness, mx, _ *sink, _ string) {
			want := strings.Replace(testMsg, "\r\n\r\n", "\r\nX-Postq: yes\r\n\r\n", 1)
			if got := h.maildirFiles("local@example.net"); len(got) != 1 || got[0] != localCopy("a@example.org", "local@example.net", want) {
				t.Errorf("maildir copy %q", got)
			}
			if got := mx.messages(); len(got) != 1 || string(got[0].data) != want || strings.Join(got[0].to, ",") != "b@example.net" {
				t.Errorf("MX got %+v", got)
			}
		},
	}, {
		name:  "envelope changes",
		rules: `#{ postq: [ action "bcc" || bcc("audit@example.net") ], delivery: [ action "local" || maildir_all() ] }`,
		check: func(t *testing.T, h *harness, mx, _ *sink, _ string) {
			for _, r := range []string{"local@example.net", "b@example.net", "audit@example.net"} {
				if got := h.maildirFiles(r); len(got) != 1 || got[0] != localCopy("a@example.org", r, testMsg) {
					t.Errorf("maildir of %s: %q", r, got)
				}
			}
			if len(mx.messages()) != 0 {
				t.Error("MX delivery for maildir recipients")
			}
		},
	}, {
		name:  "deny after the queue discards",
		rules: `#{ postq: [ rule "drop" || deny() ] }`,
		check: func(t *testing.T, h *harness, mx, senderMX *sink, _ string) {
			if len(mx.messages())+len(senderMX.messages()) != 0 || len(h.maildirFiles("local@example.net")) != 0 {
				t.Error("a discarded message was delivered or bounced")
			}
			if st := h.sp.Stats(); st[spool.QueueDead] != 0 {
				t.Errorf("stats %v", st)
			}
		},
	}, {
		name:  "quarantine after the queue",
		rules: `#{ postq: [ action "tag" || append_header("X-Spam", "yes"), rule "hold" || quarantine("spam") ] }`,
		check: func(t *testing.T, h *harness, mx, _ *sink, id string) {
			q, err := spool.ReadQuarantined(filepath.Join(h.opts.AppDir, "spam", id+".eml"))
			if err != nil {
				t.Fatalf("quarantined copy: %v", err)
			}
			want := strings.Replace(testMsg, "\r\n\r\n", "\r\nX-Spam: yes\r\n\r\n", 1)
			if string(q.Message) != want || q.Name != "spam" || q.Saved.MessageID != id {
				t.Errorf("quarantined copy %q (quarantine %q, id %q)", q.Message, q.Name, q.Saved.MessageID)
			}
			if len(mx.messages()) != 0 {
				t.Error("a quarantined message was delivered")
			}
		},
	}, {
		// The DSN skips postq (it is not filtered) but is routed by the
		// delivery stage, which is empty here.
		name:  "reject after the queue bounces",
		rules: `#{ postq: [ rule "no" || reject("550 5.7.1 not accepted here") ] }`,
		check: func(t *testing.T, h *harness, mx, senderMX *sink, id string) {
			waitFor(t, 10*time.Second, "the DSN", func() bool { return len(senderMX.messages()) > 0 })
			if len(mx.messages()) != 0 {
				t.Error("a refused message was delivered")
			}
			d := parseDSN(t, senderMX.messages()[0].data)
			if len(d.perRcpt) != 2 || d.perRcpt[0].Get("Status") != "5.7.1" || d.perRcpt[0].Get("Final-Recipient") != "rfc822; local@example.net" {
				t.Errorf("DSN recipients %v", d.perRcpt)
			}
			if st := h.sp.Stats(); st[spool.QueueDead] != 1 {
				t.Errorf("stats %v", st)
			}
		},
	}, {
		name:  "faccept before the queue skips the rules",
		rules: `#{ postq: [ rule "drop" || deny() ] }`,
		check: func(t *testing.T, h *harness, mx, _ *sink, _ string) {
			if got := mx.messages(); len(got) != 1 {
				t.Errorf("MX got %d messages; faccept at preq must skip postq", len(got))
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			rules := loadRules(t, tc.rules)
			mx, senderMX := newSink(t), newSink(t)
			h := newHarness(t, func(o *spool.Options) {
				o.Rules = func() *policy.Rules { return rules }
				o.Resolver = fakeMX{"example.net": {mx.mx(10)}, "example.org": {senderMX.mx(10)}}
			})
			s := saved("a@example.org", "local@example.net", "b@example.net")
			if strings.HasPrefix(tc.name, "faccept") {
				s.Finished = policy.Faccept.String()
			}
			id := h.enqueue(s, testMsg)
			h.run()
			h.waitIdle()
			tc.check(t, h, mx, senderMX, id)
		})
	}
}

// TestScriptErrorRetries: a script error under on_error = tempfail defers
// the message; the rules run again at the next attempt.
func TestScriptErrorRetries(t *testing.T) {
	t.Setenv("SPOOL_TEST_BOOM", "1")
	rules := loadRules(t, `#{ postq: [ rule "boom" || if env("SPOOL_TEST_BOOM") == "1" { throw "boom" } else { next() } ] }`)
	mx := newSink(t)
	h := newHarness(t, func(o *spool.Options) {
		o.Rules = func() *policy.Rules { return rules }
		o.Resolver = fakeMX{"example.net": {mx.mx(10)}}
		o.RetryPeriod = 100 * time.Millisecond
	})
	id := h.enqueue(saved("a@example.org", "b@example.net"), testMsg)
	h.run()
	waitFor(t, 10*time.Second, "the message to be deferred", func() bool { return h.sp.Stats()[spool.QueueDeferred] == 1 })
	state := h.stateOf(spool.QueueDeferred, id)
	if state["planned"] != false || state["attempts"] != float64(1) {
		t.Errorf("state after the script error %v", state)
	}
	os.Setenv("SPOOL_TEST_BOOM", "0")
	h.waitIdle()
	if got := mx.messages(); len(got) != 1 {
		t.Errorf("MX got %d messages after the rules recovered", len(got))
	}
}

// TestRecovery: messages enqueued by a spool that stopped before running
// them are delivered after Open; an interrupted enqueue is cleaned away.
func TestRecovery(t *testing.T) {
	rules := loadRules(t, maildirRules)
	h := newHarness(t, func(o *spool.Options) { o.Rules = func() *policy.Rules { return rules } })
	var ids []string
	for i := range 3 {
		s := saved("a@example.org", "b@example.net")
		ids = append(ids, h.enqueue(s, strings.Replace(testMsg, "<m1@", "<m"+string(rune('a'+i))+"@", 1)))
	}
	h.close()
	// An enqueue cut short: a directory in tmp/ that never reached incoming/.
	partial := filepath.Join(h.opts.Dir, "tmp", "partial")
	if err := os.MkdirAll(partial, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(partial, "message.eml"), []byte("half"), 0o600)
	// A state write cut short.
	os.WriteFile(filepath.Join(h.opts.Dir, spool.QueueIncoming, ids[0], "state.json.tmp"), []byte("{"), 0o600)

	h.open()
	if st := h.sp.Stats(); st[spool.QueueIncoming] != 3 {
		t.Fatalf("stats after reopening %v, want 3 incoming", st)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("the interrupted enqueue is still there: %v", err)
	}
	h.run()
	h.waitIdle()
	if got := h.maildirFiles("b@example.net"); len(got) != 3 {
		t.Errorf("%d copies delivered, want 3", len(got))
	}
}

// TestRecoveryKeepsRecipientState: a message stopped half delivered is
// finished after a restart without delivering the done recipient again.
func TestRecoveryKeepsRecipientState(t *testing.T) {
	rules := loadRules(t, `#{ delivery: [ action "route" || maildir("local@example.net") ] }`)
	mx := newSink(t)
	mx.rcpt = func(n int, _ string) error {
		return reply(421, smtp.EnhancedCode{4, 3, 2}, "shutting down")
	}
	h := newHarness(t, func(o *spool.Options) {
		o.Rules = func() *policy.Rules { return rules }
		o.Resolver = fakeMX{"example.net": {mx.mx(10)}}
		o.RetryPeriod = time.Hour
	})
	id := h.enqueue(saved("a@example.org", "local@example.net", "b@example.net"), testMsg)
	h.run()
	waitFor(t, 10*time.Second, "the message to be deferred", func() bool { return h.sp.Stats()[spool.QueueDeferred] == 1 })
	h.close()
	state := h.stateOf(spool.QueueDeferred, id)
	rcpts := state["rcpts"].([]any)
	if rcpts[0].(map[string]any)["status"] != "delivered" || rcpts[1].(map[string]any)["status"] != "pending" {
		t.Fatalf("recipients %v", rcpts)
	}
	// Make the retry due now, as if the hour had passed while it was down.
	path := filepath.Join(h.opts.Dir, spool.QueueDeferred, id, "state.json")
	state["next_attempt"] = time.Now().Add(-time.Second).Format(time.RFC3339Nano)
	b, _ := json.Marshal(state)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	mx.mu.Lock()
	mx.rcpt = nil
	mx.mu.Unlock()
	h.open()
	h.run()
	h.waitIdle()
	if got := mx.messages(); len(got) != 1 {
		t.Errorf("MX got %d messages after the restart, want 1", len(got))
	}
	if got := h.maildirFiles("local@example.net"); len(got) != 1 {
		t.Errorf("the maildir recipient got %d copies, want 1", len(got))
	}
}

// TestRecoveryHonoursNextAttempt: a deferred message found by Open waits
// for its next attempt.
func TestRecoveryHonoursNextAttempt(t *testing.T) {
	mx := newSink(t)
	mx.rcpt = func(int, string) error { return reply(451, smtp.EnhancedCode{4, 3, 1}, "later") }
	h := newHarness(t, func(o *spool.Options) {
		o.Resolver = fakeMX{"example.net": {mx.mx(10)}}
		o.RetryPeriod = time.Hour
	})
	h.enqueue(saved("a@example.org", "b@example.net"), testMsg)
	h.run()
	waitFor(t, 10*time.Second, "the message to be deferred", func() bool { return h.sp.Stats()[spool.QueueDeferred] == 1 })
	h.close()
	h.open()
	if st := h.sp.Stats(); st[spool.QueueDeferred] != 1 {
		t.Fatalf("stats after reopening %v", st)
	}
	h.run()
	time.Sleep(300 * time.Millisecond)
	if n := len(mx.attempts()); n != 1 {
		t.Errorf("%d attempts: the deferred message was retried before its time", n)
	}
	if st := h.sp.Stats(); st[spool.QueueDeferred] != 1 {
		t.Errorf("stats %v", st)
	}
}

// TestRunStopsAndResumes: cancelling Run while a delivery hangs returns
// promptly; the message stays and a later Run delivers it.
func TestRunStopsAndResumes(t *testing.T) {
	mx := newSink(t)
	release := make(chan struct{})
	mx.data = func(n int) error {
		if n == 1 {
			<-release
			return reply(451, smtp.EnhancedCode{4, 0, 0}, "late")
		}
		return nil
	}
	h := newHarness(t, func(o *spool.Options) { o.Resolver = fakeMX{"example.net": {mx.mx(10)}} })
	id := h.enqueue(saved("a@example.org", "b@example.net"), testMsg)
	h.run()
	waitFor(t, 10*time.Second, "the first DATA", func() bool {
		mx.mu.Lock()
		defer mx.mu.Unlock()
		return mx.ndata == 1
	})
	start := time.Now()
	h.stop()
	h.stop = nil
	close(release)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v to stop", d)
	}
	if st := h.sp.Stats(); st[spool.QueueWorking] != 1 {
		t.Fatalf("stats after stopping %v, want the message in working", st)
	}
	if state := h.stateOf(spool.QueueWorking, id); state["attempts"] != float64(0) {
		t.Errorf("an interrupted round counted as an attempt: %v", state)
	}
	h.run()
	h.waitIdle()
	if got := mx.messages(); len(got) != 1 {
		t.Errorf("MX got %d messages, want 1", len(got))
	}
}

// TestDelegationFromSpool: a delegate directive reached after the queue
// cannot be served from the spool; on_error decides (tempfail: deferred,
// then given up with a DSN whose status names the local error).
func TestDelegationFromSpool(t *testing.T) {
	rules := loadRules(t, `service av smtp = #{ delegator: #{ address: "127.0.0.1:9", timeout: "5s" }, receiver: "127.0.0.1:10025" };
#{ postq: [ delegate av "scan" || accept() ] }`)
	mx, senderMX := newSink(t), newSink(t)
	h := newHarness(t, func(o *spool.Options) {
		o.Rules = func() *policy.Rules { return rules }
		o.Resolver = fakeMX{"example.net": {mx.mx(10)}, "example.org": {senderMX.mx(10)}}
		o.RetryMax = 1
	})
	id := h.enqueue(saved("a@example.org", "b@example.net"), testMsg)
	h.run()
	waitFor(t, 10*time.Second, "the DSN", func() bool { return len(senderMX.messages()) > 0 })
	h.waitIdle()
	if len(mx.messages()) != 0 {
		t.Error("a message whose delegation failed was delivered")
	}
	state := h.stateOf(spool.QueueDead, id)
	if state["attempts"] != float64(2) || state["planned"] != false {
		t.Errorf("state %v", state)
	}
	d := parseDSN(t, senderMX.messages()[0].data)
	if len(d.perRcpt) != 1 || d.perRcpt[0].Get("Status") != "4.7.1" || !strings.Contains(d.perRcpt[0].Get("Diagnostic-Code"), "451") {
		t.Errorf("DSN recipients %v", d.perRcpt)
	}
}

// TestDamagedMessageGoesToDead: a message directory the spool cannot
// read is kept in dead/, not retried forever nor deleted.
func TestDamagedMessageGoesToDead(t *testing.T) {
	h := newHarness(t, nil)
	id := h.enqueue(saved("a@example.org", "b@example.net"), testMsg)
	h.close()
	if err := os.WriteFile(filepath.Join(h.opts.Dir, spool.QueueIncoming, id, "envelope.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.open()
	h.run()
	if st := h.waitIdle(); st[spool.QueueDead] != 1 {
		t.Fatalf("stats %v", st)
	}
	if ids := h.queueIDs(spool.QueueDead); len(ids) != 1 || ids[0] != id {
		t.Errorf("dead holds %v", ids)
	}
	if _, err := os.Stat(filepath.Join(h.opts.Dir, spool.QueueDead, id, "message.eml")); err != nil {
		t.Errorf("the damaged message's content is gone: %v", err)
	}
}

func TestOpenLockedAndValidation(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := spool.Open(h.opts); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second Open of the same directory: %v, want an in-use error", err)
	}
	ctx := context.Background()
	if _, err := h.sp.Enqueue(ctx, saved("a@example.org"), []byte(testMsg)); err == nil {
		t.Error("Enqueue without recipients succeeded")
	}
	s := saved("a@example.org", "b@example.net")
	id1 := h.enqueue(s, testMsg)
	id2 := h.enqueue(s, testMsg)
	if id1 != s.MessageID || id2 == id1 {
		t.Errorf("ids %q, %q for message id %q: want the message id, then a new one", id1, id2, s.MessageID)
	}
	s.MessageID = "../escape"
	if id := h.enqueue(s, testMsg); id == s.MessageID || strings.ContainsAny(id, "./") {
		t.Errorf("id %q from an unsafe message id", id)
	}
	opts := h.opts
	opts.Agent = nil
	if _, err := spool.Open(opts); err == nil {
		t.Error("Open without an agent succeeded")
	}
	h.close()
	if _, err := spool.Open(opts); err == nil {
		t.Error("Open without an agent succeeded")
	}
}
