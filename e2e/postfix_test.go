package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// policyRules is the rule set of TestPostfixPolicy: one rule for each thing
// the milter must get through Postfix.
const policyRules = `
#{
  rcpt: [
    rule "refuse unknown" || if rcpt() == "unknown@example.net" { reject("550 5.1.1 no such user here") } else { next() },
    action "alias" || if rcpt() == "old@example.net" { rewrite_rcpt_envelop("old@example.net", "new@example.net") },
  ],
  preq: [
    action "tag" || {
      append_header("X-Vsl-Policy", "checked");
      if has_header("Subject") { set_header("Subject", "[vsl] " + get_header("Subject")) }
      remove_header("X-Secret");
    },
    rule "hold" || if mail_from() == "hold@example.org" { quarantine("e2e-hold") } else { next() },
  ],
}
`

// TestPostfixPolicy sends real mail through Postfix and checks what the
// milter did: refused recipients, header changes, a rewritten recipient,
// the hold queue and the per-rule counters.
func TestPostfixPolicy(t *testing.T) {
	w := newWorld(t, map[string]string{"main.vsl": policyRules}, "")

	t.Run("refused recipient gets the rule's code", func(t *testing.T) {
		out := w.send("alice@example.org", []string{"unknown@example.net"}, []string{"Subject: refused"}, "x")
		if !strings.Contains(out, "550 5.1.1 no such user here") {
			t.Fatalf("swaks did not see the rule's reply:\n%s", out)
		}
	})

	t.Run("headers added and changed arrive", func(t *testing.T) {
		w.send("alice@example.org", []string{"bob@example.net"}, []string{"Subject: hello e2e", "X-Secret: 42"}, "body")
		m := w.waitSink("hello e2e")
		if v, _ := m.header("Subject"); v != "[vsl] hello e2e" {
			t.Errorf("Subject %q, want the rule's prefix", v)
		}
		if v, ok := m.header("X-Vsl-Policy"); !ok || v != "checked" {
			t.Errorf("X-Vsl-Policy %q (present %v)", v, ok)
		}
		if _, ok := m.header("X-Secret"); ok {
			t.Errorf("X-Secret should have been removed: %v", m.Headers)
		}
	})

	t.Run("rewritten recipient arrives at the new address", func(t *testing.T) {
		w.send("alice@example.org", []string{"old@example.net", "carol@example.net"}, []string{"Subject: alias e2e"}, "body")
		m := w.waitSink("alias e2e")
		rc := strings.Join(m.Rcpts, " ")
		if !strings.Contains(rc, "new@example.net") || strings.Contains(rc, "old@example.net") || !strings.Contains(rc, "carol@example.net") {
			t.Errorf("sink recipients %v, want new@ and carol@ without old@", m.Rcpts)
		}
	})

	t.Run("quarantined message is on hold", func(t *testing.T) {
		out := w.send("hold@example.org", []string{"dave@example.net"}, []string{"Subject: hold e2e"}, "body")
		if !strings.Contains(out, "250 2.0.0 Ok: queued") {
			t.Fatalf("the client should be told 250:\n%s", out)
		}
		var held [][]string
		for i := 0; i < 50; i++ {
			if held = w.heldQueue(); len(held) > 0 {
				break
			}
			sleep100()
		}
		if len(held) != 1 || !slices.Contains(held[0], "dave@example.net") {
			t.Fatalf("hold queue %v, want the message to dave@", held)
		}
	})

	t.Run("metrics count each rule", func(t *testing.T) {
		text := w.metricsText()
		for _, want := range []string{
			`vsl_rule_verdicts_total{rule="refuse unknown",stage="rcpt",verdict="reject"} 1`,
			`vsl_rule_verdicts_total{rule="hold",stage="preq",verdict="quarantine"} 1`,
			`vsl_transactions_total{outcome="quarantine"} 1`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

// TestPostfixDoeFamily runs the seeds' Doe family example unchanged
// (contrib/examples/doe-family) behind Postfix: a blacklisted sender is
// refused, mail to Jenny adds Jane, family members get maildir copies
// delivered by vsl-milter itself and the others go on through Postfix.
func TestPostfixDoeFamily(t *testing.T) {
	rules := map[string]string{}
	for _, f := range []string{"main.vsl", "objects.vsl", "blacklist.txt"} {
		b, err := os.ReadFile(filepath.Join("..", "contrib", "examples", "doe-family", f))
		if err != nil {
			t.Fatal(err)
		}
		rules[f] = string(b)
	}
	w := newWorld(t, rules, "")

	out := w.send("promo@spam-domain.org", []string{"john.doe@doe-family.com"}, []string{"Subject: spam"}, "buy")
	if !strings.Contains(out, "554") {
		t.Errorf("a blacklisted sender should be refused with 554:\n%s", out)
	}

	w.send("grandma@example.org", []string{"jenny.doe@doe-family.com", "bob@example.net"}, []string{"Subject: doe e2e"}, "love")
	m := w.waitSink("doe e2e")
	if strings.Join(m.Rcpts, ",") != "bob@example.net" {
		t.Errorf("only bob@ should reach Postfix's next hop; got %v", m.Rcpts)
	}
	for _, who := range []string{"jenny.doe", "jane.doe"} {
		files, _ := filepath.Glob(filepath.Join(w.maildirs, "doe-family.com", who, "new", "*"))
		if len(files) != 1 {
			t.Errorf("%s: %d message(s) in the maildir, want 1", who, len(files))
			continue
		}
		b, _ := os.ReadFile(files[0])
		if !strings.Contains(string(b), "Subject: doe e2e") || !strings.Contains(string(b), "Delivered-To: "+who+"@doe-family.com") {
			t.Errorf("%s's copy:\n%s", who, b)
		}
	}

	// Mail for outside recipients only: the delivery stage, which reads
	// nothing of the message, runs at DATA and leaves nothing to do, so
	// vsl-milter accepts there and Postfix sends it no header, body or
	// end of message; the message goes on whole.
	w.send("grandma@example.org", []string{"bob@example.net", "carol@example.net"}, []string{"Subject: doe outside"}, "hello outside")
	m = w.waitSink("doe outside")
	if strings.Join(m.Rcpts, ",") != "bob@example.net,carol@example.net" || !strings.Contains(m.Body, "hello outside") {
		t.Errorf("the message for outside recipients reached the sink as rcpts %v, body %q", m.Rcpts, m.Body)
	}
	for _, who := range []string{"bob", "carol"} {
		if files, _ := filepath.Glob(filepath.Join(w.maildirs, "example.net", who, "new", "*")); len(files) != 0 {
			t.Errorf("%s got a maildir copy", who)
		}
	}
}

// TestPostfixReload changes the rules under a running vsl-milter: SIGHUP
// loads the new rules; a broken rule file is refused and the previous
// rules keep serving, which /metrics counts.
func TestPostfixReload(t *testing.T) {
	first := `#{ rcpt: [ rule "v1" || if rcpt() == "x@example.net" { reject("550 5.7.1 refused by v1") } else { next() } ] }`
	w := newWorld(t, map[string]string{"main.vsl": first}, "")
	if out := w.send("a@example.org", []string{"x@example.net"}, nil, "b"); !strings.Contains(out, "refused by v1") {
		t.Fatalf("v1 rules not in force:\n%s", out)
	}
	second := `#{ rcpt: [ rule "v2" || if rcpt() == "x@example.net" { reject("550 5.7.1 refused by v2") } else { next() } ] }`
	if err := os.WriteFile(filepath.Join(w.dir, "rules", "main.vsl"), []byte(second), 0o644); err != nil {
		t.Fatal(err)
	}
	w.reload(`vsl_config_reloads_total{result="success"} 1`)
	if out := w.send("a@example.org", []string{"x@example.net"}, nil, "b"); !strings.Contains(out, "refused by v2") {
		t.Fatalf("v2 rules not in force after SIGHUP:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "rules", "main.vsl"), []byte(`#{ rcpt: [ rule "broken" || nxt() ] }`), 0o644); err != nil {
		t.Fatal(err)
	}
	w.reload(`vsl_config_reloads_total{result="failure"} 1`)
	if out := w.send("a@example.org", []string{"x@example.net"}, nil, "b"); !strings.Contains(out, "refused by v2") {
		t.Fatalf("after a failed reload the v2 rules must keep serving:\n%s", out)
	}
	if !strings.Contains(w.milterLog.String(), "main.vsl:1:") {
		t.Errorf("the failed reload should be logged with file:line:col:\n%s", w.milterLog)
	}
}
