package milter_test

import (
	"fmt"
	"strings"
	"testing"

	gomilter "github.com/d--j/go-milter"
)

// events are the transcript lines of the envelope events, in order.
var events = []string{"connect", "helo", "mail", "rcpt <rcpt@example.net>"}

// answered is the transcript of the default message when the event named
// by stage answers answer and the events before it continue. A refused
// recipient leaves no recipient: the MTA aborts.
func answered(stage, answer string) string {
	var b strings.Builder
	for _, ev := range events {
		if !strings.HasPrefix(ev, stage) {
			b.WriteString(ev + ": continue\n")
			continue
		}
		b.WriteString(ev + ": " + answer + "\n")
		if stage == "rcpt" {
			b.WriteString("abort\n")
		}
		return b.String()
	}
	panic("no event " + stage)
}

// atEOM is the transcript of the default message answered at its end,
// with the modifications the client received.
func atEOM(answer string, mods ...string) string {
	var b strings.Builder
	for _, ev := range events {
		b.WriteString(ev + ": continue\n")
	}
	b.WriteString("eom: " + answer + "\n")
	for _, m := range mods {
		b.WriteString("  " + m + "\n")
	}
	return b.String()
}

// atData is the transcript of the default message answered at DATA: the
// delivery stage, blind to the message, ran there and left nothing to do.
func atData(answer string) string {
	var b strings.Builder
	for _, ev := range events {
		b.WriteString(ev + ": continue\n")
	}
	b.WriteString("data: " + answer + "\n")
	return b.String()
}

// TestStatusAtEveryStage runs every status at every stage and checks the
// answers the MTA gets (SEMANTICS §8), on a unix socket and on TCP.
func TestStatusAtEveryStage(t *testing.T) {
	stages := []string{"connect", "helo", "mail", "rcpt", "preq", "postq", "delivery"}
	const (
		deny554   = "554 permanent problems with the remote server"
		deny451   = "451 4.7.1 try later"
		reject451 = "451 Requested action aborted: local error in processing"
		info550   = "550 5.7.1 go away"
	)
	ok := atEOM("accept")
	// A delivery stage that cannot read the message runs at DATA; when it
	// leaves nothing to do, the message is accepted there. Refusals,
	// discards and quarantines are still answered at the end of the
	// message (SEMANTICS §8).
	okData := atData("accept")
	tests := []struct {
		status string
		want   [7]string // connect, helo, mail, rcpt, preq, postq, delivery
	}{
		{"next()", [7]string{ok, ok, ok, ok, ok, ok, okData}},
		{"accept()", [7]string{ok, ok, ok, ok, ok, ok, okData}},
		{"state::accept()", [7]string{ok, ok, ok, ok, ok, ok, okData}},
		// faccept: the MTA may skip everything after it, as nothing is pending.
		{"faccept()", [7]string{answered("connect", "accept"), answered("helo", "accept"), answered("mail", "accept"), ok, ok, ok, okData}},
		// deny after the queue: discarded (the client would have had its 250).
		{"deny()", [7]string{answered("connect", deny554), answered("helo", deny554), answered("mail", deny554), answered("rcpt", deny554), atEOM(deny554), atEOM("discard"), atEOM("discard")}},
		{`deny("451 4.7.1 try later")`, [7]string{answered("connect", deny451), answered("helo", deny451), answered("mail", deny451), answered("rcpt", deny451), atEOM(deny451), atEOM("discard"), atEOM("discard")}},
		{"reject()", [7]string{answered("connect", reject451), answered("helo", reject451), answered("mail", reject451), answered("rcpt", reject451), atEOM(reject451), atEOM(reject451), atEOM(reject451)}},
		{`info("550 5.7.1 go away")`, [7]string{answered("connect", info550), answered("helo", info550), answered("mail", info550), answered("rcpt", info550), atEOM(info550), atEOM(info550), atEOM(info550)}},
		// info with a 2xx code cannot be sent through the milter protocol: the command goes on.
		{`info("250 2.0.0 fine")`, [7]string{ok, ok, ok, ok, ok, ok, okData}},
		{`quarantine("held")`, [7]string{
			atEOM("accept", `Quarantine "held"`), atEOM("accept", `Quarantine "held"`), atEOM("accept", `Quarantine "held"`), atEOM("accept", `Quarantine "held"`),
			atEOM("accept", `Quarantine "held"`), atEOM("accept", `Quarantine "held"`), atEOM("accept", `Quarantine "held"`)}},
	}
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			h := newHarness(t, network, "")
			for _, tt := range tests {
				for i, stage := range stages {
					t.Run(tt.status+"@"+stage, func(t *testing.T) {
						h.load(fmt.Sprintf("#{ %s: [ rule \"decide\" || %s ] }", stage, tt.status))
						if got := h.run(defaultMessage()); got != tt.want[i] {
							t.Errorf("transcript:\n%s\nwant:\n%s", got, tt.want[i])
						}
					})
				}
			}
		})
	}
}

// TestRefusedRecipientOnly checks that a refusal at RCPT refuses only that
// recipient: the message goes on for the others, and the MTA's envelope
// needs no change.
func TestRefusedRecipientOnly(t *testing.T) {
	h := newHarness(t, "unix", `#{ rcpt: [ rule "no bob" || if rcpt().local_part == "bob" { reject("550 5.1.1 no such user") } else { next() } ] }`)
	msg := defaultMessage()
	msg.rcpts = []string{"alice@example.net", "bob@example.net", "carol@example.net"}
	want := `connect: continue
helo: continue
mail: continue
rcpt <alice@example.net>: continue
rcpt <bob@example.net>: 550 5.1.1 no such user
rcpt <carol@example.net>: continue
eom: accept
`
	if got := h.run(msg); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
}

// TestDenyAtConnectRefusesLaterTransactions checks SEMANTICS §8: after a
// deny at connect, every later transaction of the connection is refused
// (an MTA stops by itself; this client goes on to check).
func TestDenyAtConnectRefusesLaterTransactions(t *testing.T) {
	h := newHarness(t, "unix", `#{
  connect: [ rule "deny all" || deny("554 5.7.1 go away") ],
  mail: [ rule "log" || { log("info", "mail"); next() } ],
}`)
	sess, err := h.client().Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	act, err := sess.Conn("client.example", gomilter.FamilyUnknown, 0, "")
	if err != nil || act.SMTPCode != 554 {
		t.Fatalf("connect: %v %v, want 554", act, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := sess.Helo("client.example"); err != nil {
			t.Fatal(err)
		}
		act, err = sess.Mail("a@example.org", "")
		if err != nil || act.SMTPReply != "554 5.7.1 go away" {
			t.Fatalf("transaction %d: mail: %v %v, want 554 5.7.1 go away", i, act, err)
		}
		if err := sess.Abort(nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTransactionLog checks the one line each transaction leaves in the
// log, with the deciding stage and rule, and the metrics.
func TestTransactionLog(t *testing.T) {
	h := newHarness(t, "unix", `#{
  mail: [ rule "spammer" || if mail_from().local_part == "spammer" { deny("550 5.7.1 spam") } else { next() } ],
  rcpt: [ rule "nobody" || if rcpt().local_part == "nobody" { reject("550 5.1.1 unknown") } else { next() } ],
  postq: [
    rule "virus" || if get_header("Subject") == "virus" { deny() } else { next() },
    rule "held" || if get_header("Subject") == "held" { quarantine("review") } else { next() },
  ],
}`)
	run := func(from, rcpt, subject string) {
		msg := defaultMessage()
		msg.from, msg.rcpts = from, []string{rcpt}
		msg.headers = [][2]string{{"Subject", subject}}
		h.run(msg)
	}
	run("alice@example.org", "bob@example.net", "hello")
	run("spammer@example.org", "bob@example.net", "hello")
	run("alice@example.org", "nobody@example.net", "hello")
	run("alice@example.org", "bob@example.net", "virus")
	run("alice@example.org", "bob@example.net", "held")
	waitFor(t, "five transactions", func() bool { return strings.Count(h.logs.String(), "transaction:") == 5 })
	for _, want := range []string{
		`outcome=accept id=4ABCDE from=<alice@example.org> rcpts=1`,
		`outcome=reject stage=mail rule=spammer at=rules.vsl:2:11 id=4ABCDE from=<spammer@example.org> rcpts=0 reply="550 5.7.1 spam"`,
		`outcome=reject stage=rcpt rule=nobody at=rules.vsl:3:11 id=4ABCDE from=<alice@example.org> rcpts=0 reply="550 5.1.1 unknown"`,
		`outcome=discard stage=postq rule=virus at=rules.vsl:5:5`,
		`outcome=quarantine stage=postq rule=held at=rules.vsl:6:5 id=4ABCDE from=<alice@example.org> rcpts=1 quarantine=review`,
	} {
		if !strings.Contains(h.logs.String(), want) {
			t.Errorf("no log line with %s in\n%s", want, h.logs.String())
		}
	}
	if got, want := h.metrics.counts(), "accept=1 discard=1 quarantine=1 reject=2"; got != want {
		t.Errorf("metrics %s, want %s", got, want)
	}
}
