package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// delegationRules hand the message to the filter twice, at postq and at
// delivery. The postq directive quarantines what the filter marks as a
// virus; the action after it and the delivery directive record what they
// saw of the filter's headers.
const delegationRules = `
service av smtp = #{
    delegator: #{ address: "127.0.0.1:%d", timeout: "%s" },
    receiver: "127.0.0.1:%d",
};

#{
  postq: [
    delegate av "scan" || if get_header("X-Virus") == "yes" { quarantine("virus") } else { next() },
    action "after" || {
      let saw = if has_header("X-Filtered") { "saw-filter" } else { "no-filter" };
      append_header("X-After-Delegate", saw);
    },
  ],
  delivery: [
    delegate av "second" || { append_header("X-Passes", ` + "`${count_header(\"X-Filtered\")}`" + `); next() },
  ],
}
`

// The filter Postfix's tables: it marks every message it passes, flags a
// "virus", redacts a password in the body, and holds (never returns) a
// message whose subject says so.
const (
	filterHeaderChecks = `/^Subject:.*hold-me/ HOLD
/^X-Eicar:/ PREPEND X-Virus: yes
/^Subject:/ PREPEND X-Filtered: yes
`
	filterBodyChecks = `/hunter2/ REPLACE password: [redacted]
`
)

// delegationWorld starts Postfix, vsl-milter with delegationRules and a
// second Postfix as the filter.
func delegationWorld(t *testing.T, timeout string) *world {
	delegator, receiver := freePort(t), freePort(t)
	rules := fmt.Sprintf(delegationRules, delegator, timeout, receiver)
	w := newWorld(t, map[string]string{"main.vsl": rules}, "")
	w.startFilter(delegator, receiver, filterHeaderChecks, filterBodyChecks)
	return w
}

// TestPostfixDelegation sends mail through Postfix to vsl-milter, which
// hands it twice to a second Postfix used as a content filter, and checks
// what the final sink gets: the filter's headers and body change, what the
// rules saw of them, and no delegation header; a message the filter marks
// is quarantined by the directive's body.
func TestPostfixDelegation(t *testing.T) {
	w := delegationWorld(t, "20s")

	t.Run("the filter's changes reach the sink", func(t *testing.T) {
		out := w.send("alice@example.org", []string{"bob@example.net", "carol@example.net"}, []string{"Subject: delegate e2e"}, "password: hunter2")
		if !strings.Contains(out, "250 2.0.0 Ok: queued") {
			t.Fatalf("swaks:\n%s", out)
		}
		m := w.waitSink("delegate e2e")
		filtered := 0
		for _, h := range m.Headers {
			name, _, _ := strings.Cut(h, ":")
			switch {
			case strings.EqualFold(name, "X-Filtered"):
				filtered++
			case strings.EqualFold(name, "X-VSMTP-DELEGATION"):
				t.Errorf("the delegation header reached the sink: %s", h)
			}
		}
		if filtered != 2 {
			t.Errorf("%d X-Filtered headers at the sink, want one per pass through the filter (2):\n%s", filtered, strings.Join(m.Headers, "\n"))
		}
		if v, _ := m.header("X-After-Delegate"); v != "saw-filter" {
			t.Errorf("X-After-Delegate %q: the rule after the directive must see the filter's header", v)
		}
		if v, _ := m.header("X-Passes"); v != "2" {
			t.Errorf("X-Passes %q: the second directive's body must see both passes", v)
		}
		if !strings.Contains(m.Body, "password: [redacted]") || strings.Contains(m.Body, "hunter2") {
			t.Errorf("the filter's body change did not reach the sink:\n%s", m.Body)
		}
		if rc := strings.Join(m.Rcpts, " "); rc != "bob@example.net carol@example.net" {
			t.Errorf("sink recipients %q: the original envelope goes on", rc)
		}
	})

	t.Run("the directive quarantines what the filter marks", func(t *testing.T) {
		out := w.send("mallory@example.org", []string{"dave@example.net"}, []string{"Subject: virus e2e", "X-Eicar: 1"}, "x")
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

	t.Run("metrics", func(t *testing.T) {
		text := w.metricsText()
		for _, want := range []string{
			`vsl_delegations_total{result="success",service="av"} 3`,
			`vsl_rule_verdicts_total{rule="scan",stage="postq",verdict="quarantine"} 1`,
			`vsl_transactions_total{outcome="quarantine"} 1`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

// TestPostfixDelegationTimeout uses a filter that never returns the
// message: the client gets the on_error answer (tempfail) once the
// service's timeout has passed, and the timeout is logged and counted.
func TestPostfixDelegationTimeout(t *testing.T) {
	w := delegationWorld(t, "3s")
	start := time.Now()
	out := w.send("alice@example.org", []string{"bob@example.net"}, []string{"Subject: hold-me e2e"}, "x")
	elapsed := time.Since(start)
	if !strings.Contains(out, "451 4.7.1") {
		t.Fatalf("the client should get the on_error tempfail:\n%s", out)
	}
	if elapsed < 3*time.Second || elapsed > 15*time.Second {
		t.Errorf("answered after %v, want just after the 3s timeout", elapsed)
	}
	if !strings.Contains(w.metricsText(), `vsl_delegations_total{result="timeout",service="av"} 1`) {
		t.Errorf("/metrics does not count the timeout")
	}
	if log := w.milterLog.String(); !strings.Contains(log, "delegation failed") || !strings.Contains(log, "directive=scan") {
		t.Errorf("the timeout is not logged:\n%s", log)
	}
}
