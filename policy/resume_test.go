package policy_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/vsl-milter/vsl-milter/policy"
)

// TestSaveResume runs preq in one session, saves it as a spool would
// (through JSON), and runs postq and delivery in a resumed session.
func TestSaveResume(t *testing.T) {
	src := `#{
  preq: [ action "tag" || append_header("X-Preq", "1") ],
  postq: [ action "post" || if has_header("X-Preq") && helo() == "c.example" && auth().authid == "joe" { append_header("X-Postq", ctx::client_ip()) } ],
  delivery: [ action "route" || maildir(rcpt_list()[0]) ],
}`
	rules, err := policy.Load("resume.vsl", []byte(src), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := policy.NewSession(rules, policy.SessionOptions{})
	s.Connect(ctx, netip.MustParseAddrPort("192.0.2.5:1234"), netip.MustParseAddrPort("192.0.2.1:25"), "mx.example", true)
	s.Helo(ctx, "c.example")
	s.Authenticate(ctx, policy.Auth{Type: "PLAIN", AuthID: "joe", AuthPass: "secret"})
	s.Mail(ctx, policy.ParseMailAddr("a@example.org"), "id1")
	s.Rcpt(ctx, policy.ParseMailAddr("b@example.net"))
	if d := s.Message(ctx, []policy.Header{{Name: "Subject", Value: "x"}}, []byte("body\r\n")); d.Action != policy.ActionContinue {
		t.Fatalf("preq: %+v", d)
	}
	if s.Tx.Pending() != true {
		t.Error("a header added at preq is pending")
	}
	b, err := json.Marshal(s.Tx.Save())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) == "" || json.Valid(b) == false {
		t.Fatal("bad JSON")
	}
	var saved policy.Saved
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	if saved.AuthID != "joe" {
		t.Errorf("auth id %q", saved.AuthID)
	}
	r := policy.Resume(rules, policy.SessionOptions{}, saved, s.Tx.Headers, s.Tx.Body)
	if d := r.AfterQueue(ctx); d.Action != policy.ActionContinue || d.Verdict.Err != nil {
		t.Fatalf("after queue: %+v", d)
	}
	if v, ok := r.Tx.HeaderValue("X-Postq"); !ok || v != "192.0.2.5" {
		t.Errorf("X-Postq %q %v: postq did not see the resumed transaction", v, ok)
	}
	ds := r.Tx.Deliveries()
	if len(ds) != 1 || ds[0].Transport != policy.Maildir {
		t.Errorf("deliveries %+v", ds)
	}
	if !rules.Calls("maildir") || !rules.Calls("append_header") || !rules.Calls("ctx::client_ip") || rules.Calls("mbox") {
		t.Error("Calls does not report the functions the rules call")
	}
}
