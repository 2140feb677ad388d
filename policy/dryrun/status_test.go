package dryrun_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/policy/dryrun"
)

const standardSession = `connect 192.0.2.1:40000
ehlo client.example.org
mail <alice@example.org>
rcpt <bob@example.net>
rcpt <carol@example.net>
data
From: alice@example.org
To: bob@example.net, carol@example.net
Subject: hello

Hi.
.
`

// TestStatusAtEveryStage runs every status at every stage, in its v1 and
// v2 spellings, and checks the outcome, the reply and the deciding rule
// against SEMANTICS §3 and §8.
func TestStatusAtEveryStage(t *testing.T) {
	stages := []string{"connect", "helo", "mail", "rcpt", "preq", "postq", "delivery"}
	type want struct {
		outcome string
		code    int
		text    string
		decided bool
	}
	statuses := []struct {
		v1, v2 string
		want   func(stage string) want
	}{
		{"next()", "state::next()", func(string) want { return want{outcome: "accept"} }},
		{"accept()", "state::accept()", func(string) want { return want{outcome: "accept", decided: true} }},
		{"faccept()", "state::faccept()", func(string) want { return want{outcome: "accept", decided: true} }},
		{"deny()", "state::deny()", func(st string) want {
			if st == "postq" || st == "delivery" {
				return want{outcome: "discard", decided: true}
			}
			return want{outcome: "reject", code: 554, text: "permanent problems with the remote server", decided: true}
		}},
		{`deny("451 4.7.1 try again later")`, `state::deny(code(451, "4.7.1", "try again later"))`, func(st string) want {
			if st == "postq" || st == "delivery" {
				return want{outcome: "discard", decided: true}
			}
			return want{outcome: "tempfail", code: 451, text: "try again later", decided: true}
		}},
		{"reject()", "state::reject()", func(string) want {
			return want{outcome: "tempfail", code: 451, text: "Requested action aborted: local error in processing", decided: true}
		}},
		{`info("550 5.7.1 not here")`, `state::info(code(550, "5.7.1", "not here"))`, func(string) want {
			return want{outcome: "reject", code: 550, text: "not here", decided: true}
		}},
		{`quarantine("held")`, `state::quarantine("held")`, func(string) want { return want{outcome: "quarantine", decided: true} }},
	}
	dir := t.TempDir()
	for _, stage := range stages {
		for _, st := range statuses {
			for i, spelling := range []string{st.v1, st.v2} {
				name := fmt.Sprintf("%s/%s", stage, spelling)
				t.Run(name, func(t *testing.T) {
					src := fmt.Sprintf("#{ %s: [ action \"before\" || (), rule \"decide\" || %s, rule \"after\" || deny() ] }\n", stage, spelling)
					path := filepath.Join(dir, fmt.Sprintf("%s_%d_%d.vsl", stage, len(spelling), i))
					if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
						t.Fatal(err)
					}
					rules, err := policy.LoadFile(path, policy.Options{})
					if err != nil {
						t.Fatal(err)
					}
					s, err := dryrun.Parse("standard.session", strings.NewReader(standardSession))
					if err != nil {
						t.Fatal(err)
					}
					rep := dryrun.Run(context.Background(), rules, s, dryrun.Options{ServerName: "mx.example.net"})
					w := st.want(stage)
					if strings.HasPrefix(spelling, "next") || strings.HasPrefix(spelling, "state::next") {
						// next() falls through to the trailing deny.
						w = statuses[3].want(stage)
						if rep.DecidedBy == nil || rep.DecidedBy.Rule != "after" {
							t.Errorf("decided by %+v, want the rule after next()", rep.DecidedBy)
						}
					} else if w.decided && (rep.DecidedBy == nil || rep.DecidedBy.Rule != "decide" || rep.DecidedBy.Stage != stage) {
						t.Errorf("decided by %+v, want rule \"decide\" at %s", rep.DecidedBy, stage)
					}
					if rep.Outcome != w.outcome {
						t.Fatalf("outcome %q, want %q (report %+v)", rep.Outcome, w.outcome, rep)
					}
					if w.code != 0 {
						if rep.Reply == nil || rep.Reply.Code != w.code || rep.Reply.Text != w.text {
							t.Errorf("reply %+v, want %d %s", rep.Reply, w.code, w.text)
						}
					}
					if w.outcome == "quarantine" && (rep.Quarantine == nil || *rep.Quarantine != "held") {
						t.Errorf("quarantine %v, want held", rep.Quarantine)
					}
					if stage == "rcpt" && (w.outcome == "reject" || w.outcome == "tempfail") {
						if len(rep.Refused) != 2 || len(rep.Recipients) != 0 {
							t.Errorf("at rcpt both recipients should be refused: refused %v, recipients %v", rep.Refused, rep.Recipients)
						}
					}
				})
			}
		}
	}
}
