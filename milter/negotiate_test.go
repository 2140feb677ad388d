package milter_test

import (
	"strings"
	"testing"

	gomilter "github.com/d--j/go-milter"

	"github.com/vsl-milter/vsl-milter/milter"
	"github.com/vsl-milter/vsl-milter/policy"
)

// negotiated renders what a client session negotiated: for each envelope
// event whether it is off, one-way or answered; whether the message is
// sent; whether the milter may modify messages.
func negotiated(s *gomilter.ClientSession) string {
	event := func(name string, off, noReply gomilter.OptProtocol) string {
		switch {
		case s.ProtocolOption(off):
			return name + "=off"
		case s.ProtocolOption(noReply):
			return name + "=one-way"
		}
		return name + "=reply"
	}
	parts := []string{
		event("connect", gomilter.OptNoConnect, gomilter.OptNoConnReply),
		event("helo", gomilter.OptNoHelo, gomilter.OptNoHeloReply),
		event("mail", gomilter.OptNoMailFrom, gomilter.OptNoMailReply),
		event("rcpt", gomilter.OptNoRcptTo, gomilter.OptNoRcptReply),
		event("header", gomilter.OptNoHeaders, gomilter.OptNoHeaderReply),
		event("body", gomilter.OptNoBody, gomilter.OptNoBodyReply),
		event("data", gomilter.OptNoData, gomilter.OptNoDataReply),
		event("eoh", gomilter.OptNoEOH, gomilter.OptNoEOHReply),
		event("unknown", gomilter.OptNoUnknown, gomilter.OptNoUnknownReply),
	}
	all := s.ActionOption(gomilter.OptAddHeader) && s.ActionOption(gomilter.OptChangeHeader) && s.ActionOption(gomilter.OptAddRcpt) &&
		s.ActionOption(gomilter.OptRemoveRcpt) && s.ActionOption(gomilter.OptChangeFrom) && s.ActionOption(gomilter.OptQuarantine)
	switch {
	case all && !s.ActionOption(gomilter.OptChangeBody):
		// No vSL function replaces the body: asking for it would only make
		// Postfix prepare for a replacement that never comes.
		parts = append(parts, "modify")
	case all:
		// A delegate directive's filter may replace the body.
		parts = append(parts, "modify+body")
	case s.ActionOption(gomilter.OptAddHeader) || s.ActionOption(gomilter.OptQuarantine):
		parts = append(parts, "modify=partial")
	}
	return strings.Join(parts, " ")
}

// TestNegotiation checks that a connection asks only for the events and
// answers its rule set needs.
func TestNegotiation(t *testing.T) {
	const never = "data=off eoh=off unknown=off"
	const early = "data=reply eoh=off unknown=off" // the delivery stage runs at DATA
	tests := []struct {
		name, rules, want string
	}{
		{"no rules", `#{}`,
			"connect=off helo=off mail=off rcpt=off header=off body=off " + never},
		{"a mail rule only", `#{ mail: [ rule "m" || next() ] }`,
			"connect=off helo=off mail=reply rcpt=off header=off body=off " + never + " modify"},
		{"a connect rule only", `#{ connect: [ rule "c" || next() ] }`,
			"connect=reply helo=off mail=off rcpt=off header=off body=off " + never + " modify"},
		{"an authenticate rule", `#{ authenticate: [ rule "a" || next() ] }`,
			"connect=off helo=off mail=reply rcpt=off header=off body=off " + never + " modify"},
		{"a rcpt rule", `#{ rcpt: [ rule "r" || next() ] }`,
			"connect=off helo=off mail=one-way rcpt=reply header=off body=off " + never + " modify"},
		{"actions only: nothing to answer", `#{ connect: [ action "c" || log("info", "c") ], rcpt: [ action "r" || bcc("x@example.org") ] }`,
			"connect=one-way helo=off mail=one-way rcpt=one-way header=off body=off " + never + " modify"},
		{"the Doe family: a mail rule, a rcpt action, a delivery action", `#{ mail: [ rule "m" || next() ], rcpt: [ action "r" || () ], deliver: [ action "d" || () ] }`,
			"connect=off helo=off mail=reply rcpt=one-way header=one-way body=one-way " + early + " modify"},
		{"a delivery rule", `#{ deliver: [ action "d" || deliver_all() ] }`,
			"connect=off helo=off mail=one-way rcpt=one-way header=one-way body=one-way " + early + " modify"},
		{"a delivery rule that reads the message", `#{ deliver: [ action "d" || if has_header("X-Local") { maildir_all() } ] }`,
			"connect=off helo=off mail=one-way rcpt=one-way header=one-way body=one-way " + never + " modify"},
		{"a header edit before the message, no rules after it", `#{ rcpt: [ action "r" || set_header("X-Seen", "yes") ] }`,
			"connect=off helo=off mail=one-way rcpt=one-way header=one-way body=one-way " + early + " modify"},
		{"a rule reading the connection's data: connect and HELO sent", `#{ mail: [ rule "m" || if client_ip() == "192.0.2.1" { deny() } else { next() } ] }`,
			"connect=one-way helo=one-way mail=reply rcpt=off header=off body=off " + never + " modify"},
		{"a delegate directive", `service av smtp = #{ delegator: #{ address: "127.0.0.1:10026" }, receiver: "127.0.0.1:10025" };
#{ postq: [ delegate av "scan" || next() ] }`,
			"connect=off helo=off mail=one-way rcpt=one-way header=one-way body=one-way " + never + " modify+body"},
		{"every stage", `#{ connect: [ rule "1" || next() ], helo: [ rule "2" || next() ], mail: [ rule "3" || next() ], rcpt: [ rule "4" || next() ], preq: [ rule "5" || next() ] }`,
			"connect=reply helo=reply mail=reply rcpt=reply header=one-way body=one-way " + never + " modify"},
	}
	h := newHarness(t, "unix", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.load(tt.rules)
			s, err := h.client().Session(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := negotiated(s); got != tt.want {
				t.Errorf("negotiated:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestOldMTA checks a milter protocol 2 MTA, which knows no one-way
// events: every event it sends is answered, and decisions still arrive.
func TestOldMTA(t *testing.T) {
	h := newHarness(t, "tcp", `#{ rcpt: [ rule "no bob" || if rcpt().local_part == "bob" { deny("550 5.1.1 no bob") } else { next() } ] }`)
	s, err := h.client(gomilter.WithMaximumVersion(2), gomilter.WithActions(gomilter.OptAddHeader|gomilter.OptQuarantine),
		gomilter.WithProtocols(gomilter.OptNoConnect|gomilter.OptNoHelo|gomilter.OptNoMailFrom|gomilter.OptNoRcptTo|gomilter.OptNoBody|gomilter.OptNoHeaders|gomilter.OptNoEOH)).Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := negotiated(s), "connect=reply helo=off mail=reply rcpt=reply header=off body=off data=off eoh=off unknown=off modify=partial"; got != want {
		t.Errorf("negotiated:\n%s\nwant:\n%s", got, want)
	}
	for _, step := range []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) {
			return s.Conn("client.example", gomilter.FamilyInet, 4711, "192.0.2.10")
		},
		func() (*gomilter.Action, error) { return s.Helo("client.example") },
		func() (*gomilter.Action, error) { return s.Mail("a@example.org", "") },
		func() (*gomilter.Action, error) { return s.Rcpt("alice@example.net", "") },
	} {
		if act, err := step(); err != nil || act.Type != gomilter.ActionContinue {
			t.Fatalf("got %v %v, want continue", act, err)
		}
	}
	if act, err := s.Rcpt("bob@example.net", ""); err != nil || act.SMTPReply != "550 5.1.1 no bob" {
		t.Fatalf("rcpt bob: %v %v", act, err)
	}
}

// TestMacros checks the macros the rules see through the transaction API:
// the server's name (j, or Options.ServerName), its address, TLS, the
// queue id as message id, and an authenticated client ({auth_authen}),
// which runs the authenticate stage at MAIL.
func TestMacros(t *testing.T) {
	h := newHarness(t, "unix", `#{
  authenticate: [ rule "no mallory" || if auth().authid == "mallory" { deny("535 5.7.8 go away") } else { next() } ],
  mail: [
    rule "check" || {
      let got = `+"`${server_name()} ${server_ip()}:${server_port()} ${is_secured()} ${message_id()} ${is_authenticated()} ${helo()} ${client_ip()}:${client_port()}`"+`;
      if got == "mx.example.com 192.0.2.1:25 true 4ABCDE true client.example 192.0.2.10:4711" { next() } else { reject("550 5.0.0 " + got) }
    },
  ],
}`, func(o *milter.Options) { o.ServerName = "fallback.example.com" })
	msg := defaultMessage()
	msg.macros = map[string]string{"{tls_version}": "TLSv1.3", "{auth_authen}": "joe", "{auth_type}": "PLAIN"}
	if got, want := h.run(msg), atEOM("accept"); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
	msg.macros["{auth_authen}"] = "mallory"
	if got, want := h.run(msg), answered("mail", "535 5.7.8 go away"); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}

	// Without j, the configured name.
	h.load(`#{ connect: [ rule "name" || if server_name() == "fallback.example.com" { next() } else { deny() } ] }`)
	s, err := h.client().Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if act, err := s.Conn("client.example", gomilter.FamilyInet6, 4711, "2001:db8::1"); err != nil || act.Type != gomilter.ActionContinue {
		t.Fatalf("connect: %v %v, want continue", act, err)
	}
}

// TestDescribe checks the line the check command prints for a rule set.
func TestDescribe(t *testing.T) {
	for _, tc := range []struct{ rules, want string }{
		{`#{}`, "connect off, helo off, mail off, rcpt off, header and body off, end of message answered"},
		{`#{ rcpt: [ rule "r" || next() ], preq: [ rule "p" || if has_header("X") { deny() } else { next() } ] }`,
			"connect off, helo off, mail one-way, rcpt answered, header and body one-way, end of message answered"},
		{`#{ mail: [ rule "m" || next() ], delivery: [ action "d" || maildir_all() ] }`,
			"connect off, helo off, mail answered, rcpt one-way, data answered (the delivery stage runs there), header and body one-way, end of message answered"},
	} {
		rules, err := policy.Load("main.vsl", []byte(tc.rules), policy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := milter.Describe(rules); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.rules, got, tc.want)
		}
	}
}

// TestModificationsNotAllowed checks an MTA that allows adding header
// fields only: modifications it did not allow are a script error naming
// each of them (on_error tempfail by default); with on_error accept the
// allowed ones are still applied.
func TestModificationsNotAllowed(t *testing.T) {
	const rules = `#{ preq: [ action "a" || { append_header("X-A", "1"); remove_header("To"); bcc("copy@example.com") } ] }`
	for _, tt := range []struct {
		onError policy.OnError
		want    string
	}{
		{policy.OnErrorTempfail, atEOM("451 4.7.1 Requested action aborted: local error in processing")},
		{policy.OnErrorAccept, atEOM("accept", `AddHeader "X-A" "1"`)},
	} {
		h := newHarness(t, "unix", rules, func(o *milter.Options) { o.OnError = tt.onError })
		h.clientOpts = []gomilter.Option{gomilter.WithActions(gomilter.OptAddHeader)}
		if got := h.run(defaultMessage()); got != tt.want {
			t.Errorf("on_error %v: transcript:\n%s\nwant:\n%s", tt.onError, got, tt.want)
		}
		for _, what := range []string{`delete_header "To": the MTA did not allow it`, `add_rcpt "copy@example.com": the MTA did not allow it`} {
			if logs := h.logs.String(); !strings.Contains(logs, what) {
				t.Errorf("on_error %v: the log does not say %s:\n%s", tt.onError, what, logs)
			}
		}
	}
}
