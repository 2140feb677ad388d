package milter_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gomilter "github.com/d--j/go-milter"

	"github.com/vsl-milter/vsl-milter/milter"
)

// TestModifications checks every modification the rules can record, as
// the MTA receives it at the end of the message.
func TestModifications(t *testing.T) {
	h := newHarness(t, "unix", "")
	tests := []struct {
		name   string
		rules  string
		macros map[string]string
		want   []string // the modifications after "eom: accept"
	}{
		{"append header", `#{ preq: [ action "a" || append_header("X-Scanned", "yes") ] }`,
			nil, []string{`AddHeader "X-Scanned" "yes"`}},
		{"add_header alias and v2 name", `#{ postq: [ action "a" || { add_header("X-A", "1"); msg::append_header("X-B", "2") } ] }`,
			nil, []string{`AddHeader "X-A" "1"`, `AddHeader "X-B" "2"`}},
		{"prepend header", `#{ preq: [ action "a" || prepend_header("X-First", "1") ] }`,
			nil, []string{`InsertHeader 0 "X-First" "1"`}},
		{"set an existing header", `#{ preq: [ action "a" || set_header("subject", "Bye") ] }`,
			nil, []string{`ChangeHeader 1 "Subject" "Bye"`}},
		{"set a new header", `#{ preq: [ action "a" || set_header("X-New", "v") ] }`,
			nil, []string{`AddHeader "X-New" "v"`}},
		{"set a header to nothing keeps it", `#{ preq: [ action "a" || set_header("Subject", "") ] }`,
			nil, []string{`ChangeHeader 1 "Subject" " "`}},
		{"remove header", `#{ delivery: [ action "a" || remove_header("To") ] }`,
			nil, []string{`ChangeHeader 1 "To" ""`}},
		{"rename header", `#{ preq: [ action "a" || rename_header("Subject", "X-Old-Subject") ] }`,
			nil, []string{`ChangeHeader 1 "Subject" ""`, `InsertHeader 2 "X-Old-Subject" "Hello"`}},
		// Postfix counts its hidden Received: header when inserting.
		{"rename header through Postfix", `#{ preq: [ action "a" || rename_header("Subject", "X-Old-Subject") ] }`,
			map[string]string{"v": "Postfix 3.7.11"}, []string{`ChangeHeader 1 "Subject" ""`, `InsertHeader 3 "X-Old-Subject" "Hello"`}},
		{"headers added at mail through Postfix", `#{ mail: [ action "a" || { append_header("X-1", "1"); prepend_header("X-2", "2") } ] }`,
			map[string]string{"v": "Postfix 3.7.11"}, []string{`InsertHeader 1 "X-1" "1"`, `InsertHeader 2 "X-2" "2"`}},
		// Sendmail adds a field before the first of the same name, or in
		// place of a default one: appends are inserts past the end.
		{"append header through Sendmail", `#{ preq: [ action "a" || { append_header("Received", "by filter"); set_header("X-New", "v") } ] }`,
			map[string]string{"v": "8.18.1"}, []string{`InsertHeader 2147483647 "Received" "by filter"`, `InsertHeader 2147483647 "X-New" "v"`}},
		{"prepend and rename through Sendmail", `#{ preq: [ action "a" || { prepend_header("X-First", "1"); rename_header("Subject", "X-Old-Subject") } ] }`,
			map[string]string{"v": "8.18.1"}, []string{`InsertHeader 0 "X-First" "1"`, `ChangeHeader 1 "Subject" ""`, `InsertHeader 3 "X-Old-Subject" "Hello"`}},
		{"header added at connect", `#{ connect: [ action "a" || append_header("X-Connect", "c") ] }`,
			nil, []string{`InsertHeader 0 "X-Connect" "c"`}},
		{"headers added at mail, in order", `#{ mail: [ action "a" || { append_header("X-1", "1"); prepend_header("X-2", "2") } ] }`,
			nil, []string{`InsertHeader 0 "X-1" "1"`, `InsertHeader 1 "X-2" "2"`}},
		{"folded header value", `#{ preq: [ action "a" || append_header("X-Long", "one\r\n\ttwo") ] }`,
			nil, []string{`AddHeader "X-Long" "one\n\ttwo"`}},
		// Without a rule after DATA the header is not sent (see newPlan):
		// set_header before DATA cannot see an existing field and adds one.
		// set_header before DATA makes the milter ask for the header even
		// without rules after DATA, so it changes the existing field.
		{"set header at mail, no rules after DATA", `#{ mail: [ action "a" || set_header("Subject", "x") ] }`,
			nil, []string{`ChangeHeader 1 "Subject" "x"`}},
		{"set header at mail, header known", `#{ mail: [ action "a" || set_header("Subject", "x") ], preq: [ rule "p" || next() ] }`,
			nil, []string{`ChangeHeader 1 "Subject" "x"`}},
		{"add recipient at mail", `#{ mail: [ action "a" || add_rcpt("bcc@example.com") ] }`,
			nil, []string{`AddRcpt "<bcc@example.com>" ""`}},
		{"bcc at rcpt", `#{ rcpt: [ action "a" || bcc("archive@example.com") ] }`,
			nil, []string{`AddRcpt "<archive@example.com>" ""`}},
		{"remove the recipient being checked", `#{ rcpt: [ action "a" || remove_rcpt(rcpt()) ] }`,
			nil, []string{`DelRcpt "<rcpt@example.net>"`}},
		{"rewrite recipient", `#{ preq: [ action "a" || rewrite_rcpt("rcpt@example.net", "other@example.net") ] }`,
			nil, []string{`DelRcpt "<rcpt@example.net>"`, `AddRcpt "<other@example.net>" ""`}},
		{"rewrite recipient and back: no change", `#{ preq: [ action "a" || { envelop::rw_rcpt("rcpt@example.net", "x@example.net"); envelop::rw_rcpt("x@example.net", "rcpt@example.net") } ] }`,
			nil, nil},
		{"change sender", `#{ mail: [ action "a" || rewrite_mail_from_envelop("bounce@example.org") ] }`,
			nil, []string{`ChangeFrom "<bounce@example.org>" ""`}},
		{"change sender twice: the last one", `#{ preq: [ action "a" || { envelop::rw_mail_from("a@example.org"); envelop::rw_mail_from("b@example.org") } ] }`,
			nil, []string{`ChangeFrom "<b@example.org>" ""`}},
		{"From: header rewrite", `#{ preq: [ action "a" || rewrite_mail_from_message("new@example.org") ] }`,
			nil, []string{`ChangeHeader 1 "From" "Sender <new@example.org>"`}},
		{"quarantine with a header", `#{ postq: [ action "tag" || append_header("X-Spam", "yes"), rule "hold" || quarantine("spam") ] }`,
			nil, []string{`AddHeader "X-Spam" "yes"`, `Quarantine "spam"`}},
		// faccept with something pending: the MTA must still come to the end.
		{"faccept at connect after a header", `#{ connect: [ action "a" || append_header("X-Seen", "1"), rule "ok" || faccept() ], mail: [ rule "never" || deny() ] }`,
			nil, []string{`InsertHeader 0 "X-Seen" "1"`}},
		{"faccept at mail after removing a header", `#{ mail: [ action "a" || remove_header("To"), rule "ok" || faccept() ], rcpt: [ rule "never" || deny() ] }`,
			nil, []string{`ChangeHeader 1 "To" ""`}},
		{"faccept at mail after a recipient", `#{ mail: [ action "a" || bcc("copy@example.com"), rule "ok" || faccept() ], rcpt: [ rule "never" || deny() ] }`,
			nil, []string{`AddRcpt "<copy@example.com>" ""`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.load(tt.rules)
			msg := defaultMessage()
			msg.macros = tt.macros
			want := atEOM("accept", tt.want...)
			if got := h.run(msg); got != want {
				t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestHeaderQuirks checks what the rules see of the header fields the MTA
// sends: the value after the one space the MTA drops, folded lines with
// CRLF line ends whatever the MTA used.
func TestHeaderQuirks(t *testing.T) {
	h := newHarness(t, "unix", `#{
  preq: [
    rule "check" || {
      let ok = get_header("X-Folded") == "line1\tline2" && get_header("X-Spaces") == "two";
      if ok && mail().contains("X-Folded: line1\r\n\tline2\r\n") && mail().contains("X-Spaces:  two\r\n") { accept() } else { reject("550 5.0.0 " + mail()) }
    },
  ],
}`)
	msg := defaultMessage()
	// Postfix and Sendmail send folded lines separated by LF and drop one
	// space after the colon (SMFIP_HDR_LEADSPC is not negotiated).
	msg.headers = append(msg.headers, [2]string{"X-Folded", "line1\n\tline2"}, [2]string{"X-Spaces", " two"})
	if got, want := h.run(msg), atEOM("accept"); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
}

// TestLocalDelivery checks that recipients delivered locally go to the
// Deliverer, durably before the answer, and leave the MTA's envelope.
func TestLocalDelivery(t *testing.T) {
	h := newHarness(t, "unix", `#{
  delivery: [
    action "local" || {
      maildir("alice@example.net");
      mbox("bob@example.net");
      forward("carol@example.net", "smtp://127.0.0.1:2525");
      append_header("X-Delivered", "local");
    },
  ],
}`)
	msg := defaultMessage()
	msg.rcpts = []string{"alice@example.net", "bob@example.net", "carol@example.net", "dave@example.net"}
	got := h.run(msg)
	want := `connect: continue
helo: continue
mail: continue
rcpt <alice@example.net>: continue
rcpt <bob@example.net>: continue
rcpt <carol@example.net>: continue
rcpt <dave@example.net>: continue
eom: accept
  AddHeader "X-Delivered" "local"
  DelRcpt "<alice@example.net>"
  DelRcpt "<bob@example.net>"
  DelRcpt "<carol@example.net>"
`
	if got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
	ds := h.deliverer.deliveries()
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
	d := ds[0]
	if d.from != "sender@example.org" {
		t.Errorf("delivery sender %q", d.from)
	}
	if got, want := strings.Join(d.rcpts, " "), "maildir:alice@example.net mbox:bob@example.net forward:carol@example.net->smtp://127.0.0.1:2525"; got != want {
		t.Errorf("delivered to %s, want %s", got, want)
	}
	wantMsg := "From: Sender <sender@example.org>\r\nTo: rcpt@example.net\r\nSubject: Hello\r\nX-Delivered: local\r\n\r\nHello there.\r\n"
	if d.msg != wantMsg {
		t.Errorf("delivered message:\n%q\nwant:\n%q", d.msg, wantMsg)
	}
}

// TestLocalDeliveryFailures checks that a message whose local delivery
// cannot be made fails temporarily as a whole (the MTA keeps it), and that
// TestLocalDeliveryBuffersReused sends messages of decreasing size: two in
// one SMTP connection, one after the MTA reuses the milter connection, one
// on a new milter connection (whose buffers come from the first): each
// delivery gets its own message whole, nothing of an earlier one.
func TestLocalDeliveryBuffersReused(t *testing.T) {
	h := newHarness(t, "unix", `#{ delivery: [ action "local" || maildir_all() ] }`)
	bodies := []string{strings.Repeat("first message line\r\n", 500), strings.Repeat("second\r\n", 20), "third\r\n", "4\r\n"}
	send := func(s *gomilter.ClientSession, i int) {
		t.Helper()
		for _, step := range []func() (*gomilter.Action, error){
			func() (*gomilter.Action, error) { return s.Mail("a@example.org", "") },
			func() (*gomilter.Action, error) { return s.Rcpt("b@example.net", "") },
			func() (*gomilter.Action, error) { return s.DataStart() },
			func() (*gomilter.Action, error) { return s.HeaderField("Subject", fmt.Sprint("message ", i), nil) },
			func() (*gomilter.Action, error) { return s.HeaderEnd() },
		} {
			if _, err := step(); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		if _, act, err := s.BodyReadFrom(strings.NewReader(bodies[i])); err != nil || act.Type != gomilter.ActionAccept {
			t.Fatalf("message %d: %v %v", i, act, err)
		}
	}
	hello := func(s *gomilter.ClientSession) {
		t.Helper()
		if _, err := s.Conn("client.example", gomilter.FamilyInet, 4711, "192.0.2.10"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Helo("client.example"); err != nil {
			t.Fatal(err)
		}
	}
	s, err := h.client().Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	hello(s)
	send(s, 0)
	send(s, 1)                           // the same SMTP connection
	if err := s.Reset(nil); err != nil { // the MTA reuses the milter connection
		t.Fatal(err)
	}
	hello(s)
	send(s, 2)
	s.Close()
	if s, err = h.client().Session(nil); err != nil { // a new milter connection
		t.Fatal(err)
	}
	hello(s)
	send(s, 3)
	s.Close()

	ds := h.deliverer.deliveries()
	if len(ds) != len(bodies) {
		t.Fatalf("%d deliveries, want %d", len(ds), len(bodies))
	}
	for i, d := range ds {
		if want := fmt.Sprintf("Subject: message %d\r\n\r\n%s", i, bodies[i]); d.msg != want {
			t.Errorf("delivery %d:\n%.200q\nwant:\n%.200q", i, d.msg, want)
		}
	}
}

// a quarantined message is not delivered locally.
func TestLocalDeliveryFailures(t *testing.T) {
	const rules = `#{ delivery: [ action "local" || { maildir_all(); append_header("X-A", "1") } ] }`
	tempfail := atEOM("451 4.3.0 Requested action aborted: local delivery failed, try again later")

	t.Run("deliverer error", func(t *testing.T) {
		h := newHarness(t, "unix", rules)
		h.deliverer.fail = errDiskFull
		if got := h.run(defaultMessage()); got != tempfail {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, tempfail)
		}
		if logs := h.logs.String(); !strings.Contains(logs, "disk full") || !strings.Contains(logs, "outcome=tempfail") {
			t.Errorf("the failure is not logged:\n%s", logs)
		}
		if got := h.metrics.counts(); got != "tempfail=1" {
			t.Errorf("metrics %s", got)
		}
	})
	t.Run("no deliverer", func(t *testing.T) {
		h := newHarness(t, "unix", rules, func(o *milter.Options) { o.Deliverer = nil })
		if got := h.run(defaultMessage()); got != tempfail {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, tempfail)
		}
		if logs := h.logs.String(); !strings.Contains(logs, "no deliverer is configured") {
			t.Errorf("the missing deliverer is not logged:\n%s", logs)
		}
	})
	t.Run("quarantine", func(t *testing.T) {
		h := newHarness(t, "unix", `#{ delivery: [ action "local" || maildir_all(), rule "hold" || quarantine("held") ] }`)
		want := atEOM("accept", `Quarantine "held"`)
		if got := h.run(defaultMessage()); got != want {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
		}
		if n := len(h.deliverer.deliveries()); n != 0 {
			t.Errorf("%d local deliveries of a quarantined message", n)
		}
	})
}

// TestMaxMessageSize checks that the rules see only the first
// MaxMessageSize bytes of the body, and that a local delivery still gets
// the whole message, through a spool file removed afterwards.
func TestMaxMessageSize(t *testing.T) {
	spool := t.TempDir()
	t.Setenv("TMPDIR", spool)
	h := newHarness(t, "unix", `#{
  preq: [ rule "size" || if mail().ends_with("\r\n\r\n0123456789") { next() } else { reject("550 5.0.0 saw more") } ],
  delivery: [ action "local" || maildir_all() ],
}`, func(o *milter.Options) { o.MaxMessageSize = 10 })
	msg := defaultMessage()
	msg.body = strings.Repeat("0123456789ABCDEFGHIJ\r\n", 5000) // several body chunks
	want := atEOM("accept", `DelRcpt "<rcpt@example.net>"`)
	if got := h.run(msg); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
	ds := h.deliverer.deliveries()
	if len(ds) != 1 || !strings.HasSuffix(ds[0].msg, "\r\n\r\n"+msg.body) {
		t.Errorf("the local delivery did not get the whole body")
	}
	left, _ := filepath.Glob(filepath.Join(spool, "vsl-milter-body-*"))
	if len(left) > 0 {
		t.Errorf("spool files left: %v", left)
	}
	if _, err := os.Stat(spool); err != nil {
		t.Fatal(err)
	}
}

// TestDeliveryAtData checks a delivery stage that cannot read the message
// (the Doe family's): it runs at DATA, a message for outside recipients is
// accepted there without its content, and a message with a local
// recipient goes on to its end, where the decision taken at DATA delivers
// the local copy, without running the stage again.
func TestDeliveryAtData(t *testing.T) {
	h := newHarness(t, "unix", `#{
  rcpt: [ action "bcc jenny" || if rcpt() == "jenny@doe-family.com" { bcc("jane@doe-family.com") } ],
  delivery: [
    action "setup delivery" || {
      log("info", "delivery stage for " + ctx().rcpt_list.len() + " recipients");
      for r in ctx().rcpt_list { if r.domain == "doe-family.com" { maildir(r.to_string()) } else { deliver(r.to_string()) } }
    },
  ],
}`)
	msg := defaultMessage()
	if got, want := h.run(msg), atData("accept"); got != want {
		t.Errorf("outside recipient: transcript:\n%s\nwant:\n%s", got, want)
	}
	if n := len(h.deliverer.deliveries()); n != 0 {
		t.Errorf("outside recipient: %d local deliveries, want 0", n)
	}

	msg.rcpts = []string{"jenny@doe-family.com", "rcpt@example.net"}
	want := `connect: continue
helo: continue
mail: continue
rcpt <jenny@doe-family.com>: continue
rcpt <rcpt@example.net>: continue
eom: accept
  DelRcpt "<jenny@doe-family.com>"
`
	if got := h.run(msg); got != want {
		t.Errorf("family recipient: transcript:\n%s\nwant:\n%s", got, want)
	}
	ds := h.deliverer.deliveries()
	if len(ds) != 1 {
		t.Fatalf("family recipient: %d local deliveries, want 1", len(ds))
	}
	if got, want := strings.Join(ds[0].rcpts, " "), "maildir:jenny@doe-family.com maildir:jane@doe-family.com"; got != want {
		t.Errorf("delivered to %s, want %s", got, want)
	}
	if want := "From: Sender <sender@example.org>\r\nTo: rcpt@example.net\r\nSubject: Hello\r\n\r\nHello there.\r\n"; ds[0].msg != want {
		t.Errorf("delivered message:\n%q\nwant:\n%q", ds[0].msg, want)
	}
	if got := strings.Count(h.logs.String(), "delivery stage for"); got != 2 {
		t.Errorf("the delivery stage ran %d times for two messages, want 2:\n%s", got, h.logs.String())
	}
	if got, want := h.metrics.counts(), "accept=2"; got != want {
		t.Errorf("transactions counted: %s, want %s", got, want)
	}
	// The connect event is not needed by these rules (they read nothing
	// of the connection): the client's address came with MAIL, for the
	// transaction lines.
	if got := strings.Count(h.logs.String(), "transaction: client=192.0.2.10 "); got != 2 {
		t.Errorf("%d transaction lines name the client, want 2:\n%s", got, h.logs.String())
	}
}
