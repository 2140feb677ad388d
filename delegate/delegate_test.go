package delegate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/delegate"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/policy/service"
)

// filterMode says what the fake filter does with a message.
type filterMode int

const (
	storeForward filterMode = iota // answers 250, then relays the message back (a content filter MTA)
	proxy                          // relays the message back, then answers with the receiver's answer (clamsmtpd)
	blackHole                      // answers 250 and never relays
	refuse                         // refuses the message at the end of DATA
)

// filter is an in-process third-party SMTP filter: it receives on its own
// port, prepends "X-Filtered: yes" and relays the message to back.
type filter struct {
	t    *testing.T
	mode filterMode
	back string // the receiver's address
	addr string
	srv  *smtp.Server

	mu  sync.Mutex
	got []string // the messages it received
}

func startFilter(t *testing.T, mode filterMode, back string) *filter {
	t.Helper()
	f := &filter{t: t, mode: mode, back: back}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &filterSession{f: f}, nil }))
	f.srv.Domain = "filter.test"
	f.srv.ErrorLog = quietLog{}
	go f.srv.Serve(ln)
	t.Cleanup(func() { f.srv.Close() })
	return f
}

// relay sends msg back to the receiver with the X-Filtered header on top.
func (f *filter) relay(from string, to []string, msg []byte) error {
	c, err := smtp.Dial(f.back)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("filter.test"); err != nil {
		return err
	}
	return c.SendMail(from, to, io.MultiReader(strings.NewReader("X-Filtered: yes\r\n"), bytes.NewReader(msg)))
}

// received returns the messages the filter received.
func (f *filter) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

type filterSession struct {
	f    *filter
	from string
	to   []string
}

func (s *filterSession) Reset()        {}
func (s *filterSession) Logout() error { return nil }
func (s *filterSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *filterSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *filterSession) Data(r io.Reader) error {
	msg, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.f.mu.Lock()
	s.f.got = append(s.f.got, string(msg))
	s.f.mu.Unlock()
	switch s.f.mode {
	case proxy:
		if err := s.f.relay(s.from, s.to, msg); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				return se
			}
			return err
		}
	case storeForward:
		go s.f.relay(s.from, s.to, msg)
	case refuse:
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "virus found"}
	}
	return nil
}

type quietLog struct{}

func (quietLog) Printf(string, ...any) {}
func (quietLog) Println(...any)        {}

// freePort returns a loopback address nobody listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// fakeMetrics records the delegations counted.
type fakeMetrics struct {
	mu   sync.Mutex
	seen []string
}

func (m *fakeMetrics) Delegation(svc, result string) {
	m.mu.Lock()
	m.seen = append(m.seen, svc+"/"+result)
	m.mu.Unlock()
}

func (m *fakeMetrics) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.seen, " ")
}

func newManager(t *testing.T, opts delegate.Options) *delegate.Manager {
	t.Helper()
	m := delegate.NewManager(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

var (
	from  = policy.ParseMailAddr("alice@example.org")
	rcpts = []policy.MailAddr{policy.ParseMailAddr("bob@example.net"), policy.ParseMailAddr("carol@example.net")}
)

func delegation(id, filterAddr, receiver string, timeout time.Duration) *policy.Delegation {
	return &policy.Delegation{
		Stage: policy.PostQ, Directive: "scan", ID: id,
		Service: &service.SMTP{Name: "av", Address: filterAddr, Timeout: timeout, Receiver: receiver},
	}
}

func delegatedMessage(d *policy.Delegation, rest string) []byte {
	return []byte(policy.DelegationHeader + ": " + d.HeaderValue() + "\r\n" + rest)
}

// TestRoundTrip hands a message to a filter that prepends a header and
// relays it back, after answering (an MTA) or before (a proxy).
func TestRoundTrip(t *testing.T) {
	for _, mode := range []filterMode{storeForward, proxy} {
		t.Run(fmt.Sprint([]string{"store and forward", "proxy"}[mode]), func(t *testing.T) {
			receiver := freePort(t)
			f := startFilter(t, mode, receiver)
			met := &fakeMetrics{}
			m := newManager(t, delegate.Options{Hostname: "mx.test", Metrics: met})
			d := delegation("Q1.1", f.addr, receiver, 5*time.Second)
			msg := delegatedMessage(d, "Subject: hello\r\nX-Long: one\r\n\ttwo\r\n\r\nbody line\r\n.dot\r\n")
			r, err := m.RoundTrip(context.Background(), d, from, rcpts, msg)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			if r.ID != "Q1.1" || r.Directive != "scan" || r.Receiver != receiver {
				t.Errorf("returned id %q directive %q receiver %q", r.ID, r.Directive, r.Receiver)
			}
			var names []string
			for _, h := range r.Headers {
				names = append(names, h.Name+"="+h.Value)
			}
			want := `X-Filtered=yes X-VSMTP-DELEGATION=sent; stage=postq; directive="scan"; id="Q1.1" Subject=hello X-Long=one` + "\r\n\ttwo"
			if got := strings.Join(names, " "); got != want {
				t.Errorf("headers:\n%q\nwant\n%q", got, want)
			}
			if string(r.Body) != "body line\r\n.dot\r\n" {
				t.Errorf("body %q", r.Body)
			}
			if r.From.String() != "alice@example.org" || len(r.Rcpts) != 2 || r.Rcpts[1].String() != "carol@example.net" {
				t.Errorf("envelope %v %v", r.From, r.Rcpts)
			}
			if got := met.String(); got != "av/success" {
				t.Errorf("metrics %q", got)
			}
		})
	}
}

// TestResume runs the whole path with the policy layer: the rules reach
// the delegate directive, the message goes through the filter, and the
// directive's body and the rules after it see the filter's header.
func TestResume(t *testing.T) {
	receiver := freePort(t)
	f := startFilter(t, storeForward, receiver)
	src := fmt.Sprintf(`
service av smtp = #{ delegator: #{ address: %q, timeout: "5s" }, receiver: %q };
#{
  postq: [
    delegate av "scan" || if get_header("X-Filtered") == "yes" { next() } else { deny() },
    action "after" || append_header("X-After", get_header("X-Filtered")),
  ],
}`, f.addr, receiver)
	rules, err := policy.Load("main.vsl", []byte(src), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(t, delegate.Options{})
	if err := m.Start(rules); err != nil {
		t.Fatal(err)
	}
	if got := m.Receivers(); len(got) != 1 || got[0] != receiver {
		t.Errorf("receivers %v, want %s", got, receiver)
	}
	ctx := context.Background()
	s := policy.NewSession(rules, policy.SessionOptions{})
	s.Connect(ctx, netip.MustParseAddrPort("192.0.2.1:1000"), netip.MustParseAddrPort("192.0.2.2:25"), "mx", false)
	s.Mail(ctx, from, "Q2")
	s.Rcpt(ctx, rcpts[0])
	d := s.EndOfMessage(ctx, []policy.Header{{Name: "Subject", Value: "hi"}}, []byte("body\r\n"))
	if d.Action != policy.ActionDelegate {
		t.Fatalf("decision %+v, want a delegation", d)
	}
	hdrs, body, err := m.Delegate(ctx, d.Delegation, s.Tx.MailFrom, s.Tx.Rcpts, s.Tx.DelegatedMessage())
	if err != nil {
		t.Fatal(err)
	}
	d = s.Resume(ctx, hdrs, body)
	if d.Action != policy.ActionContinue || d.Verdict.Err != nil {
		t.Fatalf("after the return: %+v", d)
	}
	if v, _ := s.Tx.HeaderValue("X-After"); v != "yes" {
		t.Errorf("X-After %q: the rule after the directive did not see the filter's header", v)
	}
	if _, ok := s.Tx.HeaderValue(policy.DelegationHeader); ok {
		t.Error("the delegation header is still in the message")
	}
	if got := f.received()[0]; !strings.HasPrefix(got, `X-VSMTP-DELEGATION: sent; stage=postq; directive="scan"; id="Q2.1.`) || !strings.Contains(got, "\"\r\nSubject: hi\r\n") {
		t.Errorf("the filter got:\n%s", f.received()[0])
	}
}

// TestFailures checks the faults a delegation can meet and how Result
// names them.
func TestFailures(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		met := &fakeMetrics{}
		m := newManager(t, delegate.Options{Metrics: met})
		d := delegation("U.1", freePort(t), freePort(t), 5*time.Second)
		_, err := m.RoundTrip(context.Background(), d, from, rcpts, delegatedMessage(d, "\r\nb\r\n"))
		if !errors.Is(err, delegate.ErrUnreachable) || delegate.Result(err) != delegate.ResultUnreachable {
			t.Errorf("err %v (%s), want unreachable", err, delegate.Result(err))
		}
		if got := met.String(); got != "av/unreachable" {
			t.Errorf("metrics %q", got)
		}
	})
	t.Run("refused", func(t *testing.T) {
		receiver := freePort(t)
		f := startFilter(t, refuse, receiver)
		m := newManager(t, delegate.Options{})
		d := delegation("R.1", f.addr, receiver, 5*time.Second)
		_, err := m.RoundTrip(context.Background(), d, from, rcpts, delegatedMessage(d, "\r\nb\r\n"))
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 554 || delegate.Result(err) != delegate.ResultRefused {
			t.Errorf("err %v, want the filter's 554", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		receiver := freePort(t)
		f := startFilter(t, blackHole, receiver)
		met := &fakeMetrics{}
		m := newManager(t, delegate.Options{Metrics: met})
		d := delegation("T.1", f.addr, receiver, 300*time.Millisecond)
		start := time.Now()
		_, err := m.RoundTrip(context.Background(), d, from, rcpts, delegatedMessage(d, "\r\nb\r\n"))
		if el := time.Since(start); el < 300*time.Millisecond || el > 3*time.Second {
			t.Errorf("gave up after %v, want the 300ms timeout", el)
		}
		if !errors.Is(err, delegate.ErrTimeout) || delegate.Result(err) != delegate.ResultTimeout {
			t.Errorf("err %v, want a timeout", err)
		}
		if got := met.String(); got != "av/timeout" {
			t.Errorf("metrics %q", got)
		}
		// The message comes back late: taken and dropped, not bounced.
		if err := f.relay("alice@example.org", []string{"bob@example.net"}, []byte(f.received()[0])); err != nil {
			t.Errorf("a late return should be taken and dropped, got %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		receiver := freePort(t)
		f := startFilter(t, blackHole, receiver)
		m := newManager(t, delegate.Options{})
		d := delegation("C.1", f.addr, receiver, time.Minute)
		ctx, cancel := context.WithTimeoutCause(context.Background(), 200*time.Millisecond, errors.New("eom budget spent"))
		defer cancel()
		_, err := m.RoundTrip(ctx, d, from, rcpts, delegatedMessage(d, "\r\nb\r\n"))
		if err == nil || !strings.Contains(err.Error(), "eom budget spent") {
			t.Errorf("err %v, want the caller's cause", err)
		}
	})
}

// TestReceiverRefuses checks that the receiver refuses what is not a
// delegated message it waits for, and never hands it on.
func TestReceiverRefuses(t *testing.T) {
	w := delegate.NewWaiters()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	back, err := w.Wait(ctx, "WAIT.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Wait(ctx, "WAIT.1"); !errors.Is(err, delegate.ErrDuplicateID) {
		t.Errorf("a second Wait for one id: %v", err)
	}
	r, err := delegate.Listen("127.0.0.1:0", w, delegate.ReceiverOptions{MaxMessageBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	addr := r.Addr().String()
	send := func(msg string) error { return sendTo(addr, msg) }
	tests := []struct {
		name, msg string
		code      int
	}{
		{"no header", "Subject: hi\r\n\r\nbody\r\n", 550},
		{"unknown id", "X-VSMTP-DELEGATION: sent; stage=postq; directive=\"scan\"; id=\"OTHER.1\"\r\n\r\nb\r\n", 550},
		{"malformed header", "X-VSMTP-DELEGATION: id=\"WAIT.1\"\r\n\r\nb\r\n", 550},
		{"header in the body", "Subject: x\r\n\r\nX-VSMTP-DELEGATION: sent; stage=postq; directive=\"scan\"; id=\"WAIT.1\"\r\n", 550},
		{"too large", "X-VSMTP-DELEGATION: sent; stage=postq; directive=\"scan\"; id=\"WAIT.1\"\r\n\r\n" + strings.Repeat("0123456789\r\n", 200), 552},
	}
	for _, tt := range tests {
		err := send(tt.msg)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != tt.code {
			t.Errorf("%s: %v, want %d", tt.name, err, tt.code)
		}
	}
	select {
	case m := <-back:
		t.Fatalf("a refused message reached the waiter: %+v", m)
	default:
	}
	if w.Len() != 1 {
		t.Errorf("%d waiting, want 1", w.Len())
	}
	// The right one is taken, folded header and all.
	if err := send("Received: from filter\r\n\tby x\r\nX-VSMTP-DELEGATION: sent; stage=postq;\r\n directive=\"scan\"; id=\"WAIT.1\"\r\n\r\nb\r\n"); err != nil {
		t.Fatalf("the awaited message: %v", err)
	}
	m := <-back
	if m.ID != "WAIT.1" || len(m.Headers) != 2 || m.Headers[0].Value != "from filter\r\n\tby x" {
		t.Errorf("returned %+v", m)
	}
	// A second copy (a filter that split the recipients) is dropped.
	if err := send("X-VSMTP-DELEGATION: sent; stage=postq; directive=\"scan\"; id=\"WAIT.1\"\r\n\r\nb\r\n"); err != nil {
		t.Errorf("a second copy: %v, want it taken and dropped", err)
	}
}

// TestReceiverClients checks that only the configured client networks may
// connect.
func TestReceiverClients(t *testing.T) {
	r, err := delegate.Listen("127.0.0.1:0", delegate.NewWaiters(), delegate.ReceiverOptions{
		Clients: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	c, err := net.Dial("tcp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "554 5.7.1 ") {
		t.Errorf("a client outside Clients got %q", b)
	}
}

// TestParse checks how a returned message is split into header and body.
func TestParse(t *testing.T) {
	tests := []struct {
		name, msg string
		headers   []policy.Header
		body      string
	}{
		{"simple", "A: 1\r\nB:2\r\nC:  3\r\n\r\nbody\r\n",
			[]policy.Header{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}, {Name: "C", Value: " 3"}}, "body\r\n"},
		{"folded", "A: 1\r\n 2\r\n\t3\r\n\r\n",
			[]policy.Header{{Name: "A", Value: "1\r\n 2\r\n\t3"}}, ""},
		{"bare LF", "A: 1\n 2\nB: x\n\nbody\n",
			[]policy.Header{{Name: "A", Value: "1\r\n 2"}, {Name: "B", Value: "x"}}, "body\n"},
		{"no blank line", "A: 1\r\nnot a field\r\nmore\r\n",
			[]policy.Header{{Name: "A", Value: "1"}}, "not a field\r\nmore\r\n"},
		{"no body", "A: 1\r\n", []policy.Header{{Name: "A", Value: "1"}}, ""},
		{"no header", "\r\nbody\r\n", nil, "body\r\n"},
	}
	for _, tt := range tests {
		h, b := delegate.Parse([]byte(tt.msg))
		if fmt.Sprint(h) != fmt.Sprint(tt.headers) || string(b) != tt.body {
			t.Errorf("%s: %q %q, want %q %q", tt.name, h, b, tt.headers, tt.body)
		}
	}
}

// TestWaiters checks the registry: a message reaches its waiter once, and
// an id whose wait ended is remembered as ended.
func TestWaiters(t *testing.T) {
	w := delegate.NewWaiters()
	ctx, cancel := context.WithCancel(context.Background())
	back, err := w.Wait(ctx, "A.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Return(ctx, delegate.Returned{ID: "A.1"}); err != nil {
		t.Fatal(err)
	}
	if m := <-back; m.ID != "A.1" {
		t.Errorf("got %+v", m)
	}
	if err := w.Return(ctx, delegate.Returned{ID: "A.1"}); !errors.Is(err, delegate.ErrEnded) {
		t.Errorf("second return: %v, want ErrEnded", err)
	}
	if _, err := w.Wait(ctx, "B.1"); err != nil {
		t.Fatal(err)
	}
	cancel()
	waitUntil(t, func() bool { return w.Len() == 0 })
	if err := w.Return(context.Background(), delegate.Returned{ID: "B.1"}); !errors.Is(err, delegate.ErrEnded) {
		t.Errorf("return after the wait ended: %v, want ErrEnded", err)
	}
	if err := w.Return(context.Background(), delegate.Returned{ID: "C.1"}); !errors.Is(err, delegate.ErrUnknownID) {
		t.Errorf("return of an unknown id: %v, want ErrUnknownID", err)
	}
}

// TestManagerClosed checks that a closed Manager refuses new work.
func TestManagerClosed(t *testing.T) {
	m := delegate.NewManager(delegate.Options{})
	if _, err := m.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Listen("127.0.0.1:0"); !errors.Is(err, delegate.ErrClosed) {
		t.Errorf("Listen after Close: %v", err)
	}
	d := delegation("X.1", freePort(t), "127.0.0.1:1", time.Second)
	if _, err := m.RoundTrip(context.Background(), d, from, rcpts, nil); !errors.Is(err, delegate.ErrClosed) {
		t.Errorf("RoundTrip after Close: %v", err)
	}
}

// sendTo sends msg to addr in plain text, as a filter on loopback does.
func sendTo(addr, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.SendMail("x@example.org", []string{"y@example.net"}, strings.NewReader(msg))
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
