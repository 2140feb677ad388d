package spool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/delivery"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/spool"
)

// testMsg is a message as the SMTP server hands it over: CRLF line ends,
// a folded field, a dot line and a "From " line.
const testMsg = "Received: from client.example by mx.test; Tue, 5 Mar 2024 14:07:09 +0000\r\n" +
	"From: Alice <a@example.org>\r\n" +
	"To: Bob <b@example.net>\r\n" +
	"Subject: spool\r\n" +
	" test\r\n" +
	"Message-ID: <m1@example.org>\r\n" +
	"\r\n" +
	"Hello Bob.\r\n" +
	"From here on.\r\n" +
	".dot line\r\n"

func addr(s string) policy.MailAddr { return policy.ParseMailAddr(s) }

// saved returns the envelope of an accepted message.
func saved(from string, rcpts ...string) policy.Saved {
	s := policy.Saved{
		ClientAddr:  netip.MustParseAddrPort("192.0.2.5:40000"),
		ServerAddr:  netip.MustParseAddrPort("192.0.2.1:25"),
		ServerName:  "mx.test",
		ConnectedAt: time.Now(), MailAt: time.Now(),
		Helo:      "client.example",
		MailFrom:  addr(from),
		MessageID: policy.NewMessageID(),
	}
	for _, r := range rcpts {
		s.Rcpts = append(s.Rcpts, addr(r))
	}
	return s
}

// fakeMX is an MXResolver answering from a table; other domains do not
// exist.
type fakeMX map[string][]*net.MX

func (f fakeMX) LookupMX(_ context.Context, domain string) ([]*net.MX, error) {
	if mx, ok := f[domain]; ok {
		return mx, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: domain, IsNotFound: true}
}

// harness is a spool on temporary directories, with a maildir root.
type harness struct {
	t        testing.TB
	opts     spool.Options
	sp       *spool.Spool
	maildirs string
	stop     func()
}

// newHarness opens a spool; mod adjusts the options first.
func newHarness(t testing.TB, mod func(*spool.Options)) *harness {
	t.Helper()
	root := t.TempDir()
	h := &harness{t: t, maildirs: filepath.Join(root, "maildirs")}
	if err := os.Mkdir(h.maildirs, 0o700); err != nil {
		t.Fatal(err)
	}
	agent, err := delivery.New(delivery.Options{MaildirRoot: h.maildirs, Hostname: "mx.test", ForwardTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h.opts = spool.Options{
		Dir: filepath.Join(root, "spool"), AppDir: filepath.Join(root, "app"),
		Agent: agent, Hostname: "mx.test", Resolver: fakeMX{},
		RetryPeriod: 50 * time.Millisecond, RetryMax: 3, Workers: 4,
		Logger: testLogger(t),
	}
	if mod != nil {
		mod(&h.opts)
	}
	h.open()
	t.Cleanup(h.close)
	return h
}

// testLogger logs to the test's output when SPOOL_TEST_LOG is set.
func testLogger(t testing.TB) hclog.Logger {
	if os.Getenv("SPOOL_TEST_LOG") == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Output: t.Output(), Level: hclog.Debug})
}

func (h *harness) open() {
	h.t.Helper()
	sp, err := spool.Open(h.opts)
	if err != nil {
		h.t.Fatalf("Open: %v", err)
	}
	h.sp = sp
}

// run starts the workers; close stops them.
func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.sp.Run(ctx) }()
	h.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			h.t.Errorf("Run did not return after its context ended")
		}
	}
}

// close stops Run (if running) and closes the spool.
func (h *harness) close() {
	if h.stop != nil {
		h.stop()
		h.stop = nil
	}
	if h.sp != nil {
		if err := h.sp.Close(); err != nil {
			h.t.Errorf("Close: %v", err)
		}
		h.sp = nil
	}
}

// enqueue enqueues a message and returns its id.
func (h *harness) enqueue(s policy.Saved, msg string) string {
	h.t.Helper()
	id, err := h.sp.Enqueue(context.Background(), s, []byte(msg))
	if err != nil {
		h.t.Fatalf("Enqueue: %v", err)
	}
	return id
}

// waitIdle waits until no message is in incoming, working or deferred.
func (h *harness) waitIdle() map[string]int {
	h.t.Helper()
	var st map[string]int
	waitFor(h.t, 20*time.Second, "the spool to be idle", func() bool {
		st = h.sp.Stats()
		return st[spool.QueueIncoming]+st[spool.QueueWorking]+st[spool.QueueDeferred] == 0
	})
	return st
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// maildirFiles returns the contents of the messages in rcpt's maildir.
func (h *harness) maildirFiles(rcpt string) []string {
	h.t.Helper()
	a := addr(rcpt)
	dir := filepath.Join(h.maildirs, strings.ToLower(a.Domain), a.Local, "new")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, string(b))
	}
	sort.Strings(out)
	return out
}

// queueIDs lists the message directories of a queue.
func (h *harness) queueIDs(queue string) []string {
	h.t.Helper()
	ents, err := os.ReadDir(filepath.Join(h.opts.Dir, queue))
	if err != nil {
		h.t.Fatal(err)
	}
	var ids []string
	for _, e := range ents {
		ids = append(ids, e.Name())
	}
	return ids
}

// stateOf reads a message's state.json as a generic map.
func (h *harness) stateOf(queue, id string) map[string]any {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.opts.Dir, queue, id, "state.json"))
	if err != nil {
		h.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		h.t.Fatal(err)
	}
	return m
}

// loadRules compiles a rules file written by a test.
func loadRules(t testing.TB, src string) *policy.Rules {
	t.Helper()
	path := filepath.Join(t.TempDir(), "main.vsl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := policy.Load(path, []byte(src), policy.Options{})
	if err != nil {
		t.Fatalf("rules: %v", err)
	}
	return r
}

// localCopy is what a maildir holds for msg: Return-Path and
// Delivered-To, then the message with LF line ends.
func localCopy(from, rcpt, msg string) string {
	return "Return-Path: <" + from + ">\nDelivered-To: " + rcpt + "\n" + strings.ReplaceAll(msg, "\r\n", "\n")
}

// sink is an SMTP server (go-smtp) on loopback that records what it
// accepts; rcpt and data, when set, decide the replies.
type sink struct {
	addr string

	mu    sync.Mutex
	got   []sunk
	tries []time.Time // the time of each RCPT command
	nrcpt int
	ndata int
	rcpt  func(n int, to string) error // n counts RCPT commands from 1
	data  func(n int) error            // n counts DATA commands from 1
}

// sunk is one accepted message.
type sunk struct {
	from string
	to   []string
	data []byte
}

// newSink starts a sink; it stops with the test.
func newSink(t testing.TB) *sink {
	t.Helper()
	s := &sink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }))
	srv.Domain = "sink.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// mx returns the MX record pointing at the sink.
func (s *sink) mx(pref uint16) *net.MX { return &net.MX{Host: s.addr, Pref: pref} }

func (s *sink) messages() []sunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunk(nil), s.got...)
}

func (s *sink) attempts() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.tries...)
}

type sinkSession struct {
	s    *sink
	from string
	to   []string
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s := ss.s
	s.mu.Lock()
	s.nrcpt++
	n, f := s.nrcpt, s.rcpt
	s.tries = append(s.tries, time.Now())
	s.mu.Unlock()
	if f != nil {
		if err := f(n, to); err != nil {
			return err
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := ss.s
	s.mu.Lock()
	s.ndata++
	n, f := s.ndata, s.data
	s.mu.Unlock()
	if f != nil {
		if err := f(n); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.got = append(s.got, sunk{from: ss.from, to: append([]string(nil), ss.to...), data: b})
	s.mu.Unlock()
	return nil
}

// reply builds an SMTP error reply.
func reply(code int, enhanced smtp.EnhancedCode, text string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: text}
}

// crlf turns LF line ends into CRLF (the sink reads DATA with CRLF).
func crlf(s string) []byte {
	return bytes.ReplaceAll([]byte(strings.ReplaceAll(s, "\r\n", "\n")), []byte("\n"), []byte("\r\n"))
}
