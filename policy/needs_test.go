package policy_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vsl-milter/vsl-milter/policy"
)

// loadTree writes files (name -> source) into a temporary directory and
// loads main.vsl from it.
func loadTree(t *testing.T, files map[string]string) *policy.Rules {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rules, err := policy.LoadFile(filepath.Join(dir, "main.vsl"), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

// TestDeliversBeforeMessage pins which rule sets may run their delivery
// stage before the message arrives.
func TestDeliversBeforeMessage(t *testing.T) {
	blind := `
fn local(r) { r.domain == "doe-family.com" }
let keep = |r| r.local_part == "jane";
#{
  mail: [ rule "m" || if get_header("X") == "" { next() } else { next() } ],
  delivery: [
    action "d" || for r in ctx().rcpt_list { if local(r) || keep.call(r) { maildir(r.to_string()) } else { deliver(r.to_string()) } },
  ],
}`
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{"no rules", map[string]string{"main.vsl": `#{}`}, true},
		{"doe family", map[string]string{
			"main.vsl":    `import "objects" as doe; #{ delivery: [ action "d" || for r in ctx().rcpt_list { if r in doe::family { maildir(r.to_string()) } } ] }`,
			"objects.vsl": `object family group = [ "a@doe-family.com" ];`,
		}, true},
		{"envelope functions only", map[string]string{"main.vsl": `#{ delivery: [ rule "d" || if rcpt_list().len() > 2 { log("info", mail_from().to_string()); accept() } else { next() } ] }`}, true},
		{"a closure kept by top-level code, called through call", map[string]string{"main.vsl": blind}, false},
		{"a header read", map[string]string{"main.vsl": `#{ delivery: [ action "d" || if msg::get_header("To") != "" { maildir_all() } ] }`}, false},
		{"a header read in a script function", map[string]string{"main.vsl": `fn to() { get_header("To") } #{ delivery: [ action "d" || if to() != "" { maildir_all() } ] }`}, false},
		{"a header read in a module's function", map[string]string{
			"main.vsl": `import "lib" as lib; #{ delivery: [ action "d" || if lib::to() != "" { maildir_all() } ] }`,
			"lib.vsl":  `fn inner() { msg::get_header("To") } fn to() { inner() }`,
		}, false},
		{"a function made from a name", map[string]string{"main.vsl": `#{ delivery: [ action "d" || { let f = Fn("mail"); f.call(); } ] }`}, false},
		{"a preq rule", map[string]string{"main.vsl": `#{ preq: [ rule "p" || next() ] }`}, false},
		{"a postq action", map[string]string{"main.vsl": `#{ postq: [ action "p" || log("info", "x") ] }`}, false},
		{"a delegation at delivery", map[string]string{"main.vsl": `service av smtp = #{ delegator: #{ address: "127.0.0.1:10026" }, receiver: "127.0.0.1:10025" }; #{ delivery: [ delegate av "scan" || accept() ] }`}, false},
		{"dump", map[string]string{"main.vsl": `#{ delivery: [ action "d" || dump("x") ] }`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := loadTree(t, tc.files).DeliversBeforeMessage(); got != tc.want {
				t.Errorf("DeliversBeforeMessage() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDeliversBeforeMessageEveryReader checks that each function of the
// API that reads the message keeps the delivery stage at the end of the
// message, under each of its names.
func TestDeliversBeforeMessageEveryReader(t *testing.T) {
	readers := []string{
		`mail()`, `msg::mail()`, `has_header("A")`, `msg::has_header("A")`, `count_header("A")`, `msg::count_header("A")`,
		`get_header("A")`, `msg::get_header("A")`, `get_all_headers()`, `msg::get_all_headers()`,
		`rewrite_mail_from_message("a@b.c")`, `msg::rw_mail_from("a@b.c")`, `add_rcpt_message("a@b.c")`, `msg::add_rcpt("a@b.c")`,
		`remove_rcpt_message("a@b.c")`, `msg::rm_rcpt("a@b.c")`, `rewrite_rcpt_message("a@b.c", "d@e.f")`, `msg::rw_rcpt("a@b.c", "d@e.f")`,
		`write("x")`, `fs::write("x")`, `dump("x")`, `fs::dump("x")`,
		`append_header("A", "b")`, `add_header("A", "b")`, `msg::append_header("A", "b")`, `msg::add_header("A", "b")`,
		`prepend_header("A", "b")`, `msg::prepend_header("A", "b")`, `set_header("A", "b")`, `msg::set_header("A", "b")`,
		`rename_header("A", "B")`, `msg::rename_header("A", "B")`, `remove_header("A")`, `msg::remove_header("A")`, `msg::rm_header("A")`,
	}
	for _, call := range readers {
		src := `#{ delivery: [ action "d" || ` + call + ` ] }`
		rules, err := policy.Load("main.vsl", []byte(src), policy.Options{})
		if err != nil {
			t.Fatalf("%s: %v", call, err)
		}
		if rules.DeliversBeforeMessage() {
			t.Errorf("%s: the delivery stage may run before the message", call)
		}
	}
}

// countingObserver counts the directives run per stage.
type countingObserver struct{ runs map[policy.Stage]int }

func (o *countingObserver) Directive(st policy.Stage, _ *policy.Directive, _ policy.StatusKind, _ error, _ time.Duration) {
	o.runs[st]++
}
func (o *countingObserver) Stage(policy.Stage, policy.Verdict, time.Duration) {}

// TestDeliveryBeforeMessage runs the delivery stage at the end of the
// envelope and checks that the end of the message uses its decision
// without running it again, and that a new transaction starts afresh.
func TestDeliveryBeforeMessage(t *testing.T) {
	src := `#{
  rcpt: [ action "bcc" || if rcpt().local_part == "jenny" { bcc("jane@doe-family.com") } ],
  delivery: [
    action "local" || for r in ctx().rcpt_list { if r.domain == "doe-family.com" { maildir(r.to_string()) } else { deliver(r.to_string()) } },
    rule "last" || if rcpt_list().len() > 3 { deny() } else { next() },
  ],
}`
	rules, err := policy.Load("main.vsl", []byte(src), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rules.DeliversBeforeMessage() {
		t.Fatal("DeliversBeforeMessage() = false")
	}
	obs := &countingObserver{runs: map[policy.Stage]int{}}
	s := policy.NewSession(rules, policy.SessionOptions{RunOptions: policy.RunOptions{Observer: obs}})
	ctx := context.Background()
	s.Connect(ctx, netip.MustParseAddrPort("192.0.2.1:1000"), netip.MustParseAddrPort("192.0.2.2:25"), "mx", false)
	s.Helo(ctx, "client")

	// A message for outside recipients: nothing is left to do once the
	// envelope is complete.
	s.Mail(ctx, policy.ParseMailAddr("a@example.org"), "m1")
	s.Rcpt(ctx, policy.ParseMailAddr("b@example.net"))
	d, ok := s.DeliveryBeforeMessage(ctx)
	if !ok || d.Action != policy.ActionContinue || s.Tx.Pending() {
		t.Fatalf("outside recipient: decision %+v, ok %v, pending %v; want continue with nothing pending", d, ok, s.Tx.Pending())
	}

	// A family recipient (and Jane as a bcc): local deliveries are left,
	// and the end of the message keeps them without running the stage again.
	s.Mail(ctx, policy.ParseMailAddr("a@example.org"), "m2")
	s.Rcpt(ctx, policy.ParseMailAddr("jenny@doe-family.com"))
	s.Rcpt(ctx, policy.ParseMailAddr("b@example.net"))
	if d, ok := s.DeliveryBeforeMessage(ctx); !ok || d.Action != policy.ActionContinue || !s.Tx.Pending() {
		t.Fatalf("family recipient: decision %+v, ok %v, pending %v; want continue with local deliveries", d, ok, s.Tx.Pending())
	}
	before := obs.runs[policy.Delivery]
	d = s.EndOfMessage(ctx, []policy.Header{{Name: "Subject", Value: "hi"}}, []byte("body\r\n"))
	if d.Action != policy.ActionContinue || obs.runs[policy.Delivery] != before {
		t.Fatalf("end of message: decision %+v, delivery directives run %d more times, want 0", d, obs.runs[policy.Delivery]-before)
	}
	var got []string
	for _, c := range s.Tx.Deliveries() {
		got = append(got, c.Rcpt.String()+"="+c.Transport.String())
	}
	if want := "jenny@doe-family.com=maildir jane@doe-family.com=maildir b@example.net=deliver"; strings.Join(got, " ") != want {
		t.Errorf("deliveries %q, want %q", strings.Join(got, " "), want)
	}

	// A deny decided before the message: after the queue, a deny discards.
	s.Mail(ctx, policy.ParseMailAddr("a@example.org"), "m3")
	for _, r := range []string{"a@x.org", "b@x.org", "c@x.org", "d@x.org"} {
		s.Rcpt(ctx, policy.ParseMailAddr(r))
	}
	if d, _ := s.DeliveryBeforeMessage(ctx); d.Action != policy.ActionDiscard || d.Verdict.Rule != "last" {
		t.Errorf("four recipients: decision %+v, want a discard by rule last", d)
	}

	// Without DeliveryBeforeMessage, the end of the message runs the stage.
	s.Mail(ctx, policy.ParseMailAddr("a@example.org"), "m4")
	s.Rcpt(ctx, policy.ParseMailAddr("b@example.net"))
	before = obs.runs[policy.Delivery]
	s.EndOfMessage(ctx, nil, []byte("body\r\n"))
	if obs.runs[policy.Delivery] != before+2 {
		t.Errorf("end of message without an early delivery stage: %d delivery directives run, want 2", obs.runs[policy.Delivery]-before)
	}
}

// TestReadsConnection pins which rule sets read the connection's data.
func TestReadsConnection(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{"no rules", map[string]string{"main.vsl": `#{}`}, false},
		{"doe family: ctx().rcpt_list only", map[string]string{
			"main.vsl":    `import "objects" as doe; #{ mail: [ rule "b" || if mail_from().domain in doe::bl { deny() } else { next() } ], delivery: [ action "d" || for r in ctx().rcpt_list { deliver(r.to_string()) } ] }`,
			"objects.vsl": `object bl file:fqdn = "bl.txt";`,
			"bl.txt":      "spam.example\n",
		}, false},
		{"client_ip", map[string]string{"main.vsl": `#{ rcpt: [ rule "r" || if client_ip() == "192.0.2.1" { deny() } else { next() } ] }`}, true},
		{"ctx::helo", map[string]string{"main.vsl": `#{ mail: [ rule "m" || if ctx::helo() == "x" { deny() } else { next() } ] }`}, true},
		{"a field of ctx()", map[string]string{"main.vsl": `#{ delivery: [ action "d" || log("info", ctx().client_address) ] }`}, true},
		{"ctx() kept whole", map[string]string{"main.vsl": `#{ delivery: [ action "d" || { let c = ctx(); log("info", c.rcpt_list.len().to_string()) } ] }`}, true},
		{"is_secured in a module's function", map[string]string{
			"main.vsl": `import "lib" as lib; #{ mail: [ rule "m" || if lib::tls() { next() } else { deny() } ] }`,
			"lib.vsl":  `fn tls() { is_secured() }`,
		}, true},
		{"a function made from a name", map[string]string{"main.vsl": `#{ mail: [ rule "m" || Fn("next").call() ] }`}, true},
		{"dump", map[string]string{"main.vsl": `#{ mail: [ action "m" || dump("x") ] }`}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := loadTree(t, tc.files).ReadsConnection(); got != tc.want {
				t.Errorf("ReadsConnection() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCallsSeesModules checks that Rules.Calls finds a call made only in
// an imported module's function.
func TestCallsSeesModules(t *testing.T) {
	rules := loadTree(t, map[string]string{
		"main.vsl": `import "lib" as lib; #{ rcpt: [ action "r" || lib::tag() ] }`,
		"lib.vsl":  `fn tag() { msg::set_header("X-Tag", "1") }`,
	})
	if !rules.Calls("msg::set_header") {
		t.Error("Calls(msg::set_header) = false for a call in a module")
	}
	if rules.Calls("get_header") {
		t.Error("Calls(get_header) = true, but nothing calls it")
	}
}
