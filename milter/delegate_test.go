package milter_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/delegate"
	"github.com/vsl-milter/vsl-milter/milter"
	"github.com/vsl-milter/vsl-milter/policy"
)

// delegationRules delegate twice: at postq, where the directive
// quarantines what the filter marks and a rule after it reads the
// filter's header, and at delivery.
const delegationRules = `
service av smtp = #{ delegator: #{ address: "127.0.0.1:10026", timeout: "5s" }, receiver: "127.0.0.1:10025" };
#{
  postq: [
    delegate av "scan" || if get_header("X-Virus") == "yes" { quarantine("virus") } else { next() },
    action "after" || append_header("X-After", get_header("X-Filtered")),
  ],
  delivery: [
    delegate av "second" || { append_header("X-Passes", ` + "`${count_header(\"X-Filtered\")}`" + `); accept() },
  ],
}`

// fakeDelegator plays the filter: by default it prepends X-Filtered: yes
// to what it gets and sends that back.
type fakeDelegator struct {
	mu    sync.Mutex
	sent  []sentMessage
	delay time.Duration
	// change, when set, edits the returned header and body, or fails.
	change func(d *policy.Delegation, h []policy.Header, body []byte) ([]policy.Header, []byte, error)
}

type sentMessage struct {
	id, directive string
	from          string
	rcpts         []string
	msg           string
}

func (f *fakeDelegator) Delegate(ctx context.Context, d *policy.Delegation, from policy.MailAddr, rcpts []policy.MailAddr, msg []byte) ([]policy.Header, []byte, error) {
	sm := sentMessage{id: d.ID, directive: d.Directive, from: from.String(), msg: string(msg)}
	for _, r := range rcpts {
		sm.rcpts = append(sm.rcpts, r.String())
	}
	f.mu.Lock()
	f.sent = append(f.sent, sm)
	f.mu.Unlock()
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return nil, nil, context.Cause(ctx)
		}
	}
	h, body := delegate.Parse(msg)
	h = append([]policy.Header{{Name: "X-Filtered", Value: "yes"}}, h...)
	if f.change != nil {
		return f.change(d, h, body)
	}
	return h, body, nil
}

func (f *fakeDelegator) messages() []sentMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentMessage(nil), f.sent...)
}

func withDelegator(d milter.Delegator) func(*milter.Options) {
	return func(o *milter.Options) { o.Delegator = d }
}

// TestDelegation runs two delegations at the end of the message and
// checks what the filter got and the modifications the MTA gets: the
// filter's headers, the rules' headers after each return, and the body
// the filter replaced.
func TestDelegation(t *testing.T) {
	f := &fakeDelegator{}
	h := newHarness(t, "unix", delegationRules, withDelegator(f))
	want := atEOM("accept",
		`InsertHeader 0 "X-Filtered" "yes"`,
		`AddHeader "X-After" "yes"`,
		`InsertHeader 1 "X-Filtered" "yes"`,
		`AddHeader "X-Passes" "2"`)
	if got := h.run(defaultMessage()); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
	sent := f.messages()
	if len(sent) != 2 {
		t.Fatalf("%d messages to the filter, want 2", len(sent))
	}
	first := "X-VSMTP-DELEGATION: sent; stage=postq; directive=\"scan\"; id=\"" + sent[0].id + "\"\r\n" +
		"From: Sender <sender@example.org>\r\nTo: rcpt@example.net\r\nSubject: Hello\r\n\r\nHello there.\r\n"
	if sent[0].msg != first || sent[0].from != "sender@example.org" || strings.Join(sent[0].rcpts, ",") != "rcpt@example.net" {
		t.Errorf("first delegation sent %+v", sent[0])
	}
	if !strings.HasPrefix(sent[0].id, "4ABCDE.1.") || !strings.HasPrefix(sent[1].id, "4ABCDE.2.") ||
		!strings.HasPrefix(sent[1].msg, "X-VSMTP-DELEGATION: sent; stage=delivery; directive=\"second\"; id=\""+sent[1].id+"\"\r\nX-Filtered: yes\r\n") ||
		!strings.Contains(sent[1].msg, "X-After: yes\r\n") {
		t.Errorf("the second delegation must send the message as changed so far:\n%s", sent[1].msg)
	}
	if got := h.metrics.counts(); got != "accept=1" {
		t.Errorf("metrics %s", got)
	}

	t.Run("the filter replaces the body and removes a header", func(t *testing.T) {
		f.change = func(d *policy.Delegation, hs []policy.Header, body []byte) ([]policy.Header, []byte, error) {
			var out []policy.Header
			for _, x := range hs {
				if x.Name != "To" {
					out = append(out, x)
				}
			}
			return out, []byte("Cleaned.\r\n"), nil
		}
		defer func() { f.change = nil }()
		want := atEOM("accept",
			`InsertHeader 0 "X-Filtered" "yes"`,
			`ChangeHeader 1 "To" ""`,
			`AddHeader "X-After" "yes"`,
			`InsertHeader 1 "X-Filtered" "yes"`,
			`AddHeader "X-Passes" "2"`,
			fmt.Sprintf("ReplaceBody len(body) = 10 sha1(body) = %x", sha1.Sum([]byte("Cleaned.\r\n"))))
		if got := h.run(defaultMessage()); got != want {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("the directive quarantines what the filter marks", func(t *testing.T) {
		f.change = func(d *policy.Delegation, hs []policy.Header, body []byte) ([]policy.Header, []byte, error) {
			return append([]policy.Header{{Name: "X-Virus", Value: "yes"}}, hs...), body, nil
		}
		defer func() { f.change = nil }()
		want := atEOM("accept",
			`InsertHeader 0 "X-Virus" "yes"`,
			`InsertHeader 1 "X-Filtered" "yes"`,
			`Quarantine "virus"`)
		if got := h.run(defaultMessage()); got != want {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
		}
	})
}

// TestDelegationFailure checks that a failed delegation answers on_error,
// is logged with the directive and the cause, and that under on_error =
// accept the later stage still runs.
func TestDelegationFailure(t *testing.T) {
	failScan := func(d *policy.Delegation, hs []policy.Header, body []byte) ([]policy.Header, []byte, error) {
		if d.Directive == "scan" {
			return nil, nil, fmt.Errorf("%w at 127.0.0.1:10026: connection refused", delegate.ErrUnreachable)
		}
		return hs, body, nil
	}
	t.Run("tempfail", func(t *testing.T) {
		f := &fakeDelegator{change: failScan}
		h := newHarness(t, "unix", delegationRules, withDelegator(f))
		if got, want := h.run(defaultMessage()), atEOM(tempfail451); got != want {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
		}
		logs := h.logs.String()
		for _, want := range []string{"delegation failed", "directive=scan", "service=av", "id=4ABCDE.1", "filter unreachable", "outcome=tempfail"} {
			if !strings.Contains(logs, want) {
				t.Errorf("the log lacks %q:\n%s", want, logs)
			}
		}
		if got := h.metrics.counts(); got != "tempfail=1" {
			t.Errorf("metrics %s", got)
		}
	})
	t.Run("accept", func(t *testing.T) {
		f := &fakeDelegator{change: failScan}
		h := newHarness(t, "unix", delegationRules, withDelegator(f), func(o *milter.Options) { o.OnError = policy.OnErrorAccept })
		// The failed directive counts as next(): the rest of postq runs
		// (X-After finds no filter header), then delivery and its
		// delegation.
		want := atEOM("accept", `AddHeader "X-After" ""`, `InsertHeader 0 "X-Filtered" "yes"`, `AddHeader "X-Passes" "1"`)
		if got := h.run(defaultMessage()); got != want {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("no delegator", func(t *testing.T) {
		h := newHarness(t, "unix", delegationRules)
		if got, want := h.run(defaultMessage()), atEOM(tempfail451); got != want {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
		}
		if !strings.Contains(h.logs.String(), "no delegator is configured") {
			t.Errorf("the missing delegator is not logged:\n%s", h.logs)
		}
	})
	t.Run("budget", func(t *testing.T) {
		f := &fakeDelegator{delay: time.Minute}
		h := newHarness(t, "unix", delegationRules, withDelegator(f), func(o *milter.Options) { o.DelegationBudget = 200 * time.Millisecond })
		start := time.Now()
		if got, want := h.run(defaultMessage()), atEOM(tempfail451); got != want {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("the budget did not cut the delegation: %v", el)
		}
		if !strings.Contains(h.logs.String(), "delegation budget") {
			t.Errorf("the log does not name the budget:\n%s", h.logs)
		}
	})
}

// TestDelegationKeepalive checks that the MTA gets progress notifications
// while the filter takes longer than its read timeout.
func TestDelegationKeepalive(t *testing.T) {
	f := &fakeDelegator{delay: 300 * time.Millisecond}
	h := newHarness(t, "unix", `service av smtp = #{ delegator: #{ address: "127.0.0.1:10026" }, receiver: "127.0.0.1:10025" };
#{ postq: [ delegate av "slow" || next() ] }`, withDelegator(f), func(s *milter.Server) { milter.SetKeepalive(s, 20*time.Millisecond) })
	h.clientOpts = []gomilter.Option{gomilter.WithReadTimeout(150 * time.Millisecond)}
	if got, want := h.run(defaultMessage()), atEOM("accept", `InsertHeader 0 "X-Filtered" "yes"`); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
}

// TestDelegationTruncated checks that the filter gets the whole body when
// the rules see only part of it, and that a body sent back unchanged is
// not replaced.
func TestDelegationTruncated(t *testing.T) {
	f := &fakeDelegator{}
	h := newHarness(t, "unix", `service av smtp = #{ delegator: #{ address: "127.0.0.1:10026" }, receiver: "127.0.0.1:10025" };
#{ postq: [ delegate av "scan" || if mail().ends_with("\r\n\r\n0123456789") { next() } else { reject("550 5.0.0 saw more") } ] }`,
		withDelegator(f), func(o *milter.Options) { o.MaxMessageSize = 10 })
	msg := defaultMessage()
	msg.body = strings.Repeat("0123456789ABCDEFGHIJ\r\n", 5000)
	if got, want := h.run(msg), atEOM("accept", `InsertHeader 0 "X-Filtered" "yes"`); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
	if sent := f.messages(); len(sent) != 1 || !strings.HasSuffix(sent[0].msg, "\r\n\r\n"+msg.body) {
		t.Errorf("the filter did not get the whole body")
	}
}

// TestDelegationManager runs a delegation through a real delegate.Manager
// and an SMTP filter that prepends a header and relays the message back.
func TestDelegationManager(t *testing.T) {
	receiver := freeAddr(t)
	filterAddr := smtpFilter(t, receiver)
	m := delegate.NewManager(delegate.Options{Hostname: "mx.example.com"})
	t.Cleanup(func() { m.Close(context.Background()) })
	rules := fmt.Sprintf(`service av smtp = #{ delegator: #{ address: %q, timeout: "5s" }, receiver: %q };
#{ postq: [ delegate av "scan" || if get_header("X-Filtered") == "yes" { quarantine("filtered") } else { next() } ] }`, filterAddr, receiver)
	h := newHarness(t, "tcp", rules, withDelegator(m))
	if got, want := h.run(defaultMessage()), atEOM("accept", `InsertHeader 0 "X-Filtered" "yes"`, `Quarantine "filtered"`); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
}

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// smtpFilter starts an SMTP filter that prepends X-Filtered: yes to each
// message and relays it to back after answering; it returns its address.
func smtpFilter(t *testing.T, back string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &relaySession{back: back}, nil }))
	srv.Domain = "filter.example"
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type relaySession struct {
	back string
	from string
	to   []string
}

func (s *relaySession) Reset()        {}
func (s *relaySession) Logout() error { return nil }
func (s *relaySession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *relaySession) Data(r io.Reader) error {
	msg, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	from, to := s.from, s.to
	go func() {
		c, err := smtp.Dial(s.back)
		if err != nil {
			return
		}
		defer c.Close()
		c.SendMail(from, to, io.MultiReader(strings.NewReader("X-Filtered: yes\r\n"), bytes.NewReader(msg)))
	}()
	return nil
}
