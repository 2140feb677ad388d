package milter_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/milter"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/vsl"
)

// harness runs a Server on a unix socket or a TCP port and drives it with
// go-milter's client, as an MTA would.
type harness struct {
	t             testing.TB
	srv           *milter.Server
	opts          milter.Options
	network, addr string
	rules         atomic.Pointer[policy.Rules]
	logs          *syncBuffer
	metrics       *fakeMetrics
	deliverer     *fakeDeliverer
	served        chan error
	clientOpts    []gomilter.Option // options of every client, after the defaults
}

// newHarness starts a server with the rules src. network is "unix" or
// "tcp"; each setup is a func(*milter.Options), which may change the
// options, or a func(*milter.Server), called before the server serves.
func newHarness(t testing.TB, network, src string, setup ...any) *harness {
	t.Helper()
	h := &harness{t: t, network: network, logs: &syncBuffer{}, metrics: newFakeMetrics(), deliverer: &fakeDeliverer{}, served: make(chan error, 1)}
	if src != "" {
		h.load(src)
	}
	h.opts = milter.Options{
		Rules:      h.rules.Load,
		Deadline:   5 * time.Second,
		ServerName: "mx.example.com",
		Deliverer:  h.deliverer,
		Metrics:    h.metrics,
		Logger:     hclog.New(&hclog.LoggerOptions{Output: h.logs, Level: hclog.Debug}),
		AppDir:     t.TempDir(),
	}
	for _, f := range setup {
		if f, ok := f.(func(*milter.Options)); ok {
			f(&h.opts)
		}
	}
	h.srv = milter.NewServer(h.opts)
	for _, f := range setup {
		if f, ok := f.(func(*milter.Server)); ok {
			f(h.srv)
		}
	}
	ln := h.listen()
	h.addr = ln.Addr().String()
	go func() { h.served <- h.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-h.served:
			if err != nil {
				t.Errorf("Serve returned %v after Shutdown, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after Shutdown")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", h.logs.String())
		}
	})
	return h
}

func (h *harness) listen() net.Listener {
	h.t.Helper()
	var ln net.Listener
	var err error
	switch h.network {
	case "unix":
		dir := h.t.TempDir()
		if len(dir) > 90 { // a socket path has at most 108 bytes
			dir, err = os.MkdirTemp("", "vm")
			if err != nil {
				h.t.Fatal(err)
			}
			h.t.Cleanup(func() { os.RemoveAll(dir) })
		}
		ln, err = net.Listen("unix", filepath.Join(dir, "milter.sock"))
	default:
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return ln
}

// load makes src the rule set of new connections.
func (h *harness) load(src string, env ...*vsl.Env) *policy.Rules {
	h.t.Helper()
	opts := policy.Options{}
	if len(env) > 0 {
		opts.Env = env[0]
	}
	rules, err := policy.Load("rules.vsl", []byte(src), opts)
	if err != nil {
		h.t.Fatalf("loading rules: %v\n%s", err, src)
	}
	h.rules.Store(rules)
	return rules
}

// client returns a go-milter client of the server (an MTA offering every
// protocol option and action of milter protocol 6).
func (h *harness) client(opts ...gomilter.Option) *gomilter.Client {
	opts = append(append([]gomilter.Option{gomilter.WithReadTimeout(10 * time.Second)}, h.clientOpts...), opts...)
	return gomilter.NewClient(h.network, h.addr, opts...)
}

// message is one SMTP transaction as the MTA reports it.
type message struct {
	helo    string
	from    string
	rcpts   []string
	headers [][2]string
	body    string
	macros  map[string]string // macros the MTA knows (sent when asked for)
}

func defaultMessage() message {
	return message{
		helo:  "client.example",
		from:  "sender@example.org",
		rcpts: []string{"rcpt@example.net"},
		headers: [][2]string{
			{"From", "Sender <sender@example.org>"},
			{"To", "rcpt@example.net"},
			{"Subject", "Hello"},
		},
		body: "Hello there.\r\n",
	}
}

// run drives one connection with one transaction and returns the
// transcript of the milter's answers, one line per event, and the
// modifications at the end of the message, indented. It stops at the first
// answer that ends the transaction, as an MTA does.
func (h *harness) run(msg message) string {
	h.t.Helper()
	macros := gomilter.NewMacroBag()
	macros.Set(gomilter.MacroMTAFQDN, "mx.example.com")
	macros.Set(gomilter.MacroDaemonAddr, "192.0.2.1")
	macros.Set(gomilter.MacroDaemonPort, "25")
	macros.Set(gomilter.MacroQueueId, "4ABCDE")
	macros.Set(gomilter.MacroClientAddr, "192.0.2.10") // as the connect event says
	macros.Set(gomilter.MacroClientPort, "4711")
	for k, v := range msg.macros {
		macros.Set(k, v)
	}
	sess, err := h.client().Session(macros)
	if err != nil {
		h.t.Errorf("milter session: %v", err)
		return ""
	}
	defer sess.Close()
	var b strings.Builder
	// step writes the line of one event and reports whether the
	// transaction goes on after it.
	step := func(name string) func(*gomilter.Action, error) bool {
		return func(act *gomilter.Action, err error) bool {
			if err != nil {
				fmt.Fprintf(&b, "%s: error %v\n", name, err)
				return false
			}
			fmt.Fprintf(&b, "%s: %s\n", name, describe(act))
			return act.Type == gomilter.ActionContinue
		}
	}
	if !step("connect")(sess.Conn("client.example", gomilter.FamilyInet, 4711, "192.0.2.10")) {
		return b.String()
	}
	if !step("helo")(sess.Helo(msg.helo)) {
		return b.String()
	}
	if !step("mail")(sess.Mail(msg.from, "SIZE=100")) {
		return b.String()
	}
	accepted := 0
	for _, r := range msg.rcpts {
		act, err := sess.Rcpt(r, "")
		if step("rcpt <"+r+">")(act, err) {
			accepted++
		} else if err != nil || act.Type == gomilter.ActionAccept || act.Type == gomilter.ActionDiscard {
			return b.String()
		}
	}
	if accepted == 0 {
		if err := sess.Abort(nil); err != nil {
			fmt.Fprintf(&b, "abort: error %v\n", err)
		}
		b.WriteString("abort\n")
		return b.String()
	}
	if !step("data")(sess.DataStart()) {
		return b.String()
	}
	for _, hd := range msg.headers {
		if !step("header " + hd[0])(sess.HeaderField(hd[0], hd[1], nil)) {
			return b.String()
		}
	}
	if !step("eoh")(sess.HeaderEnd()) {
		return b.String()
	}
	mods, act, err := sess.BodyReadFrom(strings.NewReader(msg.body))
	step("eom")(act, err)
	for _, m := range mods {
		fmt.Fprintf(&b, "  %s\n", m)
	}
	return compact(b.String())
}

// compact drops the transcript lines of events that always continue
// (data, headers, end of header) so that tests name only what decides.
func compact(s string) string {
	var out []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if l == "data: continue\n" || l == "eoh: continue\n" || (strings.HasPrefix(l, "header ") && strings.HasSuffix(l, ": continue\n")) {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "")
}

// describe renders a milter answer.
func describe(act *gomilter.Action) string {
	switch act.Type {
	case gomilter.ActionAccept:
		return "accept"
	case gomilter.ActionContinue:
		return "continue"
	case gomilter.ActionDiscard:
		return "discard"
	case gomilter.ActionReject:
		return "reject"
	case gomilter.ActionTempFail:
		return "tempfail"
	case gomilter.ActionRejectWithCode:
		return act.SMTPReply
	}
	return act.String()
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeMetrics counts what the server reports.
type fakeMetrics struct {
	opened, closed atomic.Int64
	mu             sync.Mutex
	outcomes       map[string]int
}

func newFakeMetrics() *fakeMetrics { return &fakeMetrics{outcomes: map[string]int{}} }

func (m *fakeMetrics) SessionOpened() { m.opened.Add(1) }
func (m *fakeMetrics) SessionClosed() { m.closed.Add(1) }
func (m *fakeMetrics) Transaction(outcome string) {
	m.mu.Lock()
	m.outcomes[outcome]++
	m.mu.Unlock()
}

// counts renders the outcome counts, sorted: "accept=2 reject=1".
func (m *fakeMetrics) counts() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var parts []string
	for k, v := range m.outcomes {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// fakeDeliverer records local deliveries and fails when told to.
type fakeDeliverer struct {
	mu    sync.Mutex
	calls []delivery
	fail  error
	block chan struct{} // when set, Deliver waits for it (or ctx)
	delay time.Duration // when set, every Deliver takes that long (or ctx)
}

type delivery struct {
	msg   string
	from  string
	rcpts []string
}

func (d *fakeDeliverer) Deliver(ctx context.Context, msg []byte, from policy.MailAddr, rcpts []policy.DeliveryChoice) error {
	if d.block != nil {
		select {
		case <-d.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if d.delay > 0 {
		select {
		case <-time.After(d.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return d.fail
	}
	var rs []string
	for _, r := range rcpts {
		s := r.Transport.String() + ":" + r.Rcpt.String()
		if r.Target != "" {
			s += "->" + r.Target
		}
		rs = append(rs, s)
	}
	d.calls = append(d.calls, delivery{msg: string(msg), from: from.String(), rcpts: rs})
	return nil
}

func (d *fakeDeliverer) deliveries() []delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]delivery(nil), d.calls...)
}

var errDiskFull = errors.New("disk full")
