package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/policy"
)

const delegationRules = `
service av smtp = #{ delegator: #{ address: "127.0.0.1:10026", timeout: "5s" }, receiver: "127.0.0.1:10025" };
#{
  postq: [
    action "before" || append_header("X-Before", "1"),
    delegate av "scan" || if get_header("X-Virus") == "yes" { quarantine("virus") } else { next() },
    action "after" || append_header("X-After", get_header("X-Scanned")),
  ],
  delivery: [
    delegate av "second" || accept(),
  ],
}
`

func delegationSession(t *testing.T) *policy.Session {
	t.Helper()
	rules, err := policy.Load("delegate.vsl", []byte(delegationRules), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := policy.NewSession(rules, policy.SessionOptions{})
	s.Connect(ctx, netip.MustParseAddrPort("192.0.2.1:1000"), netip.MustParseAddrPort("192.0.2.2:25"), "mx", false)
	s.Helo(ctx, "c")
	s.Mail(ctx, policy.ParseMailAddr("a@example.org"), "msg1")
	s.Rcpt(ctx, policy.ParseMailAddr("b@example.net"))
	return s
}

// TestDelegation hands the message to a filter twice (postq and delivery)
// and resumes each time with what the filter sent back.
func TestDelegation(t *testing.T) {
	ctx := context.Background()
	s := delegationSession(t)
	d := s.EndOfMessage(ctx, []policy.Header{{Name: "Subject", Value: "hi"}}, []byte("body\r\n"))
	if d.Action != policy.ActionDelegate || d.Delegation == nil {
		t.Fatalf("decision %+v, want a delegation", d)
	}
	dl := d.Delegation
	if dl.Directive != "scan" || dl.Stage != policy.PostQ || dl.Service.Address != "127.0.0.1:10026" || !strings.HasPrefix(dl.ID, "msg1.1.") {
		t.Errorf("delegation %+v", dl)
	}
	sent := string(s.Tx.DelegatedMessage())
	if !strings.HasPrefix(sent, `X-VSMTP-DELEGATION: sent; stage=postq; directive="scan"; id="`+dl.ID+`"`+"\r\n") || !strings.Contains(sent, "X-Before: 1\r\n") {
		t.Errorf("sent message:\n%s", sent)
	}
	id, dir, ok := policy.ParseDelegationHeader(dl.HeaderValue())
	if !ok || id != dl.ID || dir != "scan" {
		t.Errorf("ParseDelegationHeader: %q %q %v", id, dir, ok)
	}
	// The filter prepends a header and sends the message back.
	back := []policy.Header{{Name: "X-Scanned", Value: "clean"}, {Name: policy.DelegationHeader, Value: dl.HeaderValue()}}
	back = append(back, s.Tx.Headers...)
	d = s.Resume(ctx, back, s.Tx.Body)
	if d.Action != policy.ActionDelegate || d.Delegation.Directive != "second" || !strings.HasPrefix(d.Delegation.ID, "msg1.2.") {
		t.Fatalf("after the first return: %+v, want the second delegation", d)
	}
	if v, _ := s.Tx.HeaderValue("X-After"); v != "clean" {
		t.Errorf("X-After %q: the directives after the delegation must see the returned message", v)
	}
	d = s.Resume(ctx, s.Tx.Headers, []byte("new body\r\n"))
	if d.Action != policy.ActionContinue || d.Verdict.Status.Kind != policy.Accept || d.Verdict.Rule != "second" {
		t.Fatalf("after the second return: %+v", d)
	}
	var kinds []string
	for _, m := range s.Tx.Modifications() {
		kinds = append(kinds, m.Kind.String()+":"+m.Name)
	}
	if got := strings.Join(kinds, " "); got != "add_header:X-Before insert_header:X-Scanned add_header:X-After replace_body:" {
		t.Errorf("modifications: %s", got)
	}
}

// TestDelegationVerdicts: the directive's status counts like a rule's, and
// a failed delegation gives the on_error decision naming the directive.
func TestDelegationVerdicts(t *testing.T) {
	ctx := context.Background()
	s := delegationSession(t)
	d := s.EndOfMessage(ctx, nil, []byte("b\r\n"))
	d = s.Resume(ctx, []policy.Header{{Name: "X-Virus", Value: "yes"}}, []byte("b\r\n"))
	if d.Action != policy.ActionQuarantine || d.Quarantine != "virus" || d.Verdict.Rule != "scan" {
		t.Fatalf("decision %+v, want quarantine by scan", d)
	}

	s = delegationSession(t)
	s.EndOfMessage(ctx, nil, []byte("b\r\n"))
	d = s.FailDelegation(ctx, errors.New("connection refused"))
	if d.Action != policy.ActionRefuse || d.Reply.Code != 451 || !strings.Contains(d.Verdict.Err.Error(), `delegate "scan": connection refused`) {
		t.Fatalf("failed delegation: %+v (%v)", d, d.Verdict.Err)
	}
}

// TestDelegationHeaderDiff: the filter removes fields and adds others; the
// recorded edits turn the original header into the returned one exactly.
func TestDelegationHeaderDiff(t *testing.T) {
	ctx := context.Background()
	s := delegationSession(t)
	var hs []policy.Header
	for _, n := range []string{"A", "B", "C", "D", "E", "F"} {
		hs = append(hs, policy.Header{Name: n, Value: n})
	}
	s.EndOfMessage(ctx, hs, []byte("b\r\n"))
	before := append([]policy.Header(nil), s.Tx.Headers...) // A..F and X-Before
	nmods := len(s.Tx.Modifications())
	want := []policy.Header{{Name: "X-New", Value: "1"}, before[0], before[2], before[4], before[5], before[6]}
	s.Resume(ctx, want, []byte("b\r\n"))
	// Replay the recorded edits on the original header.
	got := append([]policy.Header(nil), before...)
	for _, m := range s.Tx.Modifications()[nmods:] {
		switch m.Kind {
		case policy.InsertHeader:
			got = append(got[:m.Index], append([]policy.Header{{Name: m.Name, Value: m.Value}}, got[m.Index:]...)...)
		case policy.DeleteHeader:
			n := 0
			for i, h := range got {
				if strings.EqualFold(h.Name, m.Name) {
					if n++; n == m.Index {
						got = append(got[:i], got[i+1:]...)
						break
					}
				}
			}
		case policy.AddHeader:
			got = append(got, policy.Header{Name: m.Name, Value: m.Value})
		}
	}
	// The directives after the delegation add X-After.
	want = append(want, policy.Header{Name: "X-After", Value: ""})
	if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(s.Tx.Headers) != fmt.Sprint(want) {
		t.Errorf("replayed %v\ntransaction %v\nwant %v", got, s.Tx.Headers, want)
	}
}

// TestRestoreDelegation saves a pending delegation, rebuilds the session
// as a spool does after a restart, and resumes it at the directive.
func TestRestoreDelegation(t *testing.T) {
	ctx := context.Background()
	s := delegationSession(t)
	d := s.EndOfMessage(ctx, []policy.Header{{Name: "Subject", Value: "hi"}}, []byte("body\r\n"))
	if d.Action != policy.ActionDelegate {
		t.Fatalf("decision %+v, want a delegation", d)
	}
	p, ok := s.SaveDelegation()
	if !ok || p.ID != d.Delegation.ID || p.Directive != "scan" || p.Stage != policy.PostQ {
		t.Fatalf("saved %+v, %v", p, ok)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back policy.PendingDelegation
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	r := policy.Resume(s.Rules, policy.SessionOptions{}, s.Tx.Save(), []policy.Header{{Name: "Subject", Value: "hi"}}, []byte("body\r\n"))
	dl, err := r.RestoreDelegation(back)
	if err != nil {
		t.Fatal(err)
	}
	if dl.ID != p.ID || dl.Service == nil || dl.Service.Address != "127.0.0.1:10026" || r.Tx.Delegation() != dl {
		t.Fatalf("restored %+v", dl)
	}
	d = r.Resume(ctx, []policy.Header{
		{Name: policy.DelegationHeader, Value: dl.HeaderValue()},
		{Name: "X-Scanned", Value: "clean"}, {Name: "Subject", Value: "hi"},
	}, []byte("body\r\n"))
	if d.Action != policy.ActionDelegate || d.Delegation.Directive != "second" || d.Delegation.ID == p.ID {
		t.Fatalf("decision %+v, want the second delegation", d)
	}
	if got := r.Tx.Headers; len(got) < 3 || got[len(got)-1].Name != "X-After" || got[len(got)-1].Value != "clean" {
		t.Errorf("headers %+v", got)
	}
	if _, ok := policy.NewSession(s.Rules, policy.SessionOptions{}).SaveDelegation(); ok {
		t.Error("a session without delegation saved one")
	}
	bad := back
	bad.Directive = "gone"
	if _, err := policy.Resume(s.Rules, policy.SessionOptions{}, s.Tx.Save(), nil, nil).RestoreDelegation(bad); err == nil {
		t.Error("restoring a delegation the rules do not have succeeded")
	}
}
