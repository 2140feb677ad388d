package dryrun

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/policy/object"
)

// Mode selects whose replies the report gives: the milter mapping of
// SEMANTICS §8 or the standalone SMTP replies of §9.
type Mode uint8

// The modes.
const (
	Milter Mode = iota
	SMTP
)

// Options configure a dry run.
type Options struct {
	Mode       Mode
	OnError    policy.OnError
	ServerName string         // the server's domain (server_name())
	ServerAddr netip.AddrPort // the address the client connected to
	Deadline   time.Duration  // per stage (0: none)
	// Log receives the rules' log() calls.
	Log func(level, msg string)
}

// Reply is an SMTP reply in a report.
type Reply struct {
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced"`
	Text     string `json:"text"`
}

func replyOf(c object.Code) *Reply {
	return &Reply{Code: c.Code, Enhanced: c.Enhanced, Text: c.Text}
}

// DecidedBy names the directive behind the outcome.
type DecidedBy struct {
	Stage string `json:"stage"`
	Rule  string `json:"rule"`
}

// RefusedRcpt is a recipient the rules refused.
type RefusedRcpt struct {
	Rcpt string `json:"rcpt"`
	Code int    `json:"code"`
	Text string `json:"text"`
}

// DeliveryReport is the delivery choice for one recipient.
type DeliveryReport struct {
	Rcpt      string  `json:"rcpt"`
	Transport string  `json:"transport"`
	Target    *string `json:"target"`
}

// DirectiveReport is one directive's outcome in a stage.
type DirectiveReport struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// StageReport is one stage's run.
type StageReport struct {
	Stage      string            `json:"stage"`
	Status     string            `json:"status"`
	Skipped    bool              `json:"skipped,omitempty"`
	Directives []DirectiveReport `json:"directives"`
}

// Report is what a dry run found: the fields of `vsl-milter test --json`.
type Report struct {
	Outcome    string           `json:"outcome"` // accept, reject, tempfail, discard or quarantine
	Reply      *Reply           `json:"reply"`
	DecidedBy  *DecidedBy       `json:"decided_by"`
	Error      string           `json:"error,omitempty"` // a script error, file:line:col: message
	Quarantine *string          `json:"quarantine"`
	MailFrom   *string          `json:"mail_from"`
	Recipients []string         `json:"recipients"`
	Refused    []RefusedRcpt    `json:"refused_recipients"`
	Headers    [][2]string      `json:"headers"`
	Deliveries []DeliveryReport `json:"deliveries"`
	Stages     []StageReport    `json:"stages"`
	// Delegations lists the filters the message would have been handed to
	// (a dry run resumes as if each returned it unchanged).
	Delegations []DelegationReport `json:"delegations,omitempty"`
}

// DelegationReport is one delegation a dry run simulated.
type DelegationReport struct {
	Stage     string `json:"stage"`
	Directive string `json:"directive"`
	Service   string `json:"service"`
	Address   string `json:"address"`
}

// observer collects each directive's outcome, with its stage.
type observer struct {
	cur    []DirectiveReport
	stages []policy.Stage // the stage of each entry of cur
}

func (o *observer) Directive(st policy.Stage, d *policy.Directive, status policy.StatusKind, err error, _ time.Duration) {
	r := DirectiveReport{Name: d.Name, Kind: d.Kind.String(), Status: status.String()}
	if err != nil {
		r.Status, r.Error = "error", err.Error()
	}
	o.cur = append(o.cur, r)
	o.stages = append(o.stages, st)
}

func (o *observer) Stage(policy.Stage, policy.Verdict, time.Duration) {}

// Run runs the script through the rules and reports the result.
func Run(ctx context.Context, rules *policy.Rules, s *Script, opts Options) *Report {
	obs := &observer{}
	sess := policy.NewSession(rules, policy.SessionOptions{
		OnError:  opts.OnError,
		Deadline: opts.Deadline,
		RunOptions: policy.RunOptions{
			Observer: obs,
			Log:      opts.Log,
			DryRun:   true,
		},
	})
	server := opts.ServerAddr
	if !server.IsValid() {
		server = netip.MustParseAddrPort("127.0.0.1:25")
	}
	rep := &Report{Recipients: []string{}, Refused: []RefusedRcpt{}, Headers: [][2]string{}, Deliveries: []DeliveryReport{}, Stages: []StageReport{}}
	var last *policy.Decision // the latest decision that accepted explicitly
	resumedPast := false      // a resumed delegation already ran the delivery stage
	var step func(d policy.Decision) (stop bool)
	step = func(d policy.Decision) (stop bool) {
		// A resumed delegation runs the rest of its stage and the later
		// ones in one call: each earlier stage gets a report of its own.
		for len(obs.stages) > 0 && obs.stages[0] != d.Verdict.Stage {
			n := 0
			for n < len(obs.stages) && obs.stages[n] == obs.stages[0] {
				n++
			}
			rep.Stages = append(rep.Stages, StageReport{Stage: obs.stages[0].String(), Status: "next", Directives: obs.cur[:n]})
			obs.cur, obs.stages = obs.cur[n:], obs.stages[n:]
		}
		st := StageReport{Stage: d.Verdict.Stage.String(), Skipped: d.Verdict.Skipped, Directives: obs.cur}
		if st.Directives == nil {
			st.Directives = []DirectiveReport{}
		}
		switch {
		case d.Verdict.Err != nil:
			st.Status = "error"
		case d.Verdict.Status != nil:
			st.Status = d.Verdict.Status.Kind.String()
		}
		obs.cur, obs.stages = nil, nil
		rep.Stages = append(rep.Stages, st)
		if d.Verdict.Err != nil && rep.Error == "" {
			rep.Error = d.Verdict.Err.Error()
			if d.Action == policy.ActionContinue {
				rep.DecidedBy = decidedBy(d)
			}
		}
		if d.Verdict.Status != nil && d.Verdict.Rule != "" && !d.Verdict.Skipped {
			switch d.Verdict.Status.Kind {
			case policy.Accept, policy.Faccept:
				dd := d
				last = &dd
			}
		}
		switch d.Action {
		case policy.ActionDelegate:
			// A dry run sends nothing: the filter is taken to return the
			// message unchanged, and the rules resume.
			rep.Delegations = append(rep.Delegations, DelegationReport{
				Stage: d.Delegation.Stage.String(), Directive: d.Delegation.Directive, Service: d.Delegation.Service.Name,
				Address: d.Delegation.Service.Address,
			})
			resumedPast = d.Delegation.Stage < policy.Delivery
			return step(sess.Resume(ctx, sess.Tx.Headers, sess.Tx.Body))
		case policy.ActionRefuse:
			if d.Verdict.Stage == policy.Rcpt {
				return false // only this recipient
			}
			rep.refuse(d)
			return true
		case policy.ActionDiscard:
			rep.Outcome = "discard"
			rep.DecidedBy = decidedBy(d)
			return true
		case policy.ActionQuarantine:
			rep.Outcome = "quarantine"
			q := d.Quarantine
			rep.Quarantine = &q
			rep.DecidedBy = decidedBy(d)
			if opts.Mode == SMTP {
				rep.Reply = &Reply{Code: 250, Text: "Ok"}
			}
			return true
		}
		return false
	}
	done := func() *Report {
		rep.fill(sess.Tx, opts.Mode)
		return rep
	}
	if step(sess.Connect(ctx, s.Client, server, opts.ServerName, false)) {
		return done()
	}
	if s.Helo != "" && step(sess.Helo(ctx, s.Helo)) {
		return done()
	}
	if s.Auth != nil && step(sess.Authenticate(ctx, *s.Auth)) {
		return done()
	}
	if s.MailFrom == nil {
		rep.accept(last, opts.Mode)
		return done()
	}
	if step(sess.Mail(ctx, *s.MailFrom, "")) {
		return done()
	}
	for _, r := range s.Rcpts {
		if step(sess.Rcpt(ctx, r)) {
			return done()
		}
	}
	if len(sess.Tx.Rcpts) == 0 {
		// Every recipient was refused: the MTA ends the transaction with
		// the last refusal.
		ref := sess.Tx.Refused()
		if len(ref) > 0 {
			r := ref[len(ref)-1]
			rep.Outcome = outcomeOf(r.Reply)
			rep.Reply = replyOf(r.Reply)
			rep.DecidedBy = &DecidedBy{Stage: "rcpt", Rule: r.Rule}
		}
		return done()
	}
	if !s.HasData {
		rep.accept(last, opts.Mode)
		return done()
	}
	if step(sess.Message(ctx, s.Headers, s.Body)) {
		return done()
	}
	if step(sess.PostQueue(ctx)) {
		return done()
	}
	if !resumedPast && step(sess.Delivery(ctx)) {
		return done()
	}
	rep.accept(last, opts.Mode)
	return done()
}

func decidedBy(d policy.Decision) *DecidedBy {
	if d.Verdict.Rule == "" {
		return nil
	}
	return &DecidedBy{Stage: d.Verdict.RuleStage.String(), Rule: d.Verdict.Rule}
}

func outcomeOf(c object.Code) string {
	if c.Code >= 400 && c.Code < 500 {
		return "tempfail"
	}
	return "reject"
}

func (rep *Report) refuse(d policy.Decision) {
	rep.Outcome = outcomeOf(d.Reply)
	rep.Reply = replyOf(d.Reply)
	if by := decidedBy(d); by != nil {
		rep.DecidedBy = by
	}
}

func (rep *Report) accept(last *policy.Decision, mode Mode) {
	rep.Outcome = "accept"
	if last != nil && rep.DecidedBy == nil {
		rep.DecidedBy = decidedBy(*last)
	}
	if mode == SMTP {
		rep.Reply = &Reply{Code: 250, Text: "Ok"}
	}
}

// fill copies the final envelope and message into the report.
func (rep *Report) fill(tx *policy.Transaction, mode Mode) {
	if tx.Stage() >= policy.Mail {
		from := tx.MailFrom.String()
		if tx.MailFrom.Null {
			from = "<>"
		}
		rep.MailFrom = &from
	}
	for _, r := range tx.Rcpts {
		rep.Recipients = append(rep.Recipients, r.String())
	}
	for _, r := range tx.Refused() {
		rep.Refused = append(rep.Refused, RefusedRcpt{Rcpt: r.Rcpt.String(), Code: r.Reply.Code, Text: strings.TrimSpace(r.Reply.Enhanced + " " + r.Reply.Text)})
	}
	for _, h := range tx.Headers {
		rep.Headers = append(rep.Headers, [2]string{h.Name, policy.Unfold(h.Value)})
	}
	if rep.Outcome == "accept" {
		for _, d := range tx.Deliveries() {
			dr := DeliveryReport{Rcpt: d.Rcpt.String(), Transport: d.Transport.String()}
			if d.Target != "" {
				t := d.Target
				dr.Target = &t
			}
			rep.Deliveries = append(rep.Deliveries, dr)
		}
	}
}

// JSON renders the report as indented JSON (what `test --json` prints).
func (rep *Report) JSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return nil, fmt.Errorf("encoding the report: %w", err)
	}
	return b.Bytes(), nil
}

// WriteText writes the report as a readable trail.
func (rep *Report) WriteText(w io.Writer) {
	for _, st := range rep.Stages {
		skipped := ""
		if st.Skipped {
			skipped = " (skipped: an earlier status finished the transaction)"
		}
		fmt.Fprintf(w, "%-9s %s%s\n", st.Stage, st.Status, skipped)
		for _, d := range st.Directives {
			fmt.Fprintf(w, "  %-8s %-30q %s\n", d.Kind, d.Name, d.Status)
			if d.Error != "" {
				fmt.Fprintf(w, "           %s\n", d.Error)
			}
		}
	}
	fmt.Fprintf(w, "outcome:   %s", rep.Outcome)
	if rep.Reply != nil {
		fmt.Fprintf(w, " %d %s", rep.Reply.Code, strings.TrimSpace(rep.Reply.Enhanced+" "+rep.Reply.Text))
	}
	if rep.DecidedBy != nil {
		fmt.Fprintf(w, " (by %s %q)", rep.DecidedBy.Stage, rep.DecidedBy.Rule)
	}
	fmt.Fprintln(w)
	if rep.Error != "" {
		fmt.Fprintf(w, "error:     %s\n", rep.Error)
	}
	if rep.Quarantine != nil {
		fmt.Fprintf(w, "quarantine: %s\n", *rep.Quarantine)
	}
	for _, d := range rep.Delegations {
		fmt.Fprintf(w, "delegated: %s %q to %s (%s), taken as returned unchanged\n", d.Stage, d.Directive, d.Service, d.Address)
	}
	if rep.MailFrom != nil {
		fmt.Fprintf(w, "mail from: %s\n", *rep.MailFrom)
	}
	fmt.Fprintf(w, "rcpt to:   %s\n", strings.Join(rep.Recipients, ", "))
	for _, r := range rep.Refused {
		fmt.Fprintf(w, "refused:   %s %d %s\n", r.Rcpt, r.Code, r.Text)
	}
	for _, d := range rep.Deliveries {
		t := ""
		if d.Target != nil {
			t = " " + *d.Target
		}
		fmt.Fprintf(w, "delivery:  %s %s%s\n", d.Rcpt, d.Transport, t)
	}
	if len(rep.Headers) > 0 {
		fmt.Fprintln(w, "headers:")
		for _, h := range rep.Headers {
			fmt.Fprintf(w, "  %s: %s\n", h[0], h[1])
		}
	}
}
