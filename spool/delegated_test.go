package spool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/delegate"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/spool"
)

// filter is a third-party content filter on go-smtp: it takes a delegated
// message, prepends X-Filtered: yes and sends it back to the receiver,
// unless it holds it (hold) or drops it (never).
type filter struct {
	addr  string
	back  string // the receiver's address
	hold  atomic.Bool
	never atomic.Bool

	mu   sync.Mutex
	got  int
	held [][]byte
	errs []error
}

func newFilter(t *testing.T, back string) *filter {
	t.Helper()
	f := &filter{back: back}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &filterSession{f: f}, nil }))
	srv.Domain = "filter.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *filter) received() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got
}

// sendBack relays a filtered message to the receiver.
func (f *filter) sendBack(msg []byte) {
	err := func() error {
		c, err := smtp.Dial(f.back)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.Hello("filter.test"); err != nil {
			return err
		}
		if err := c.Mail("a@example.org", nil); err != nil {
			return err
		}
		if err := c.Rcpt("b@example.net", nil); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		if _, err := w.Write(msg); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		return c.Quit()
	}()
	if err != nil {
		f.mu.Lock()
		f.errs = append(f.errs, err)
		f.mu.Unlock()
	}
}

// release sends the held messages back.
func (f *filter) release() {
	f.hold.Store(false)
	f.mu.Lock()
	held := f.held
	f.held = nil
	f.mu.Unlock()
	for _, m := range held {
		f.sendBack(m)
	}
}

type filterSession struct{ f *filter }

func (s *filterSession) Reset()                               {}
func (s *filterSession) Logout() error                        { return nil }
func (s *filterSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *filterSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *filterSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	out := append([]byte("X-Filtered: yes\r\n"), b...)
	f := s.f
	f.mu.Lock()
	f.got++
	switch {
	case f.never.Load():
	case f.hold.Load():
		f.held = append(f.held, out)
	default:
		// A store-and-forward filter: it answers, then relays.
		go f.sendBack(out)
	}
	f.mu.Unlock()
	return nil
}

// switchSink hands returns to the spool open now (it changes on restart).
type switchSink struct{ sp atomic.Pointer[spool.Spool] }

func (s *switchSink) Return(ctx context.Context, m delegate.Returned) error {
	sp := s.sp.Load()
	if sp == nil {
		return errors.New("no spool")
	}
	return sp.Return(ctx, m)
}

// delegationMetrics counts delegations by result.
type delegationMetrics struct {
	mu      sync.Mutex
	results map[string]int
}

func (m *delegationMetrics) SpoolSize(string, int) {}
func (m *delegationMetrics) Delegation(service, result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.results == nil {
		m.results = map[string]int{}
	}
	m.results[service+"/"+result]++
}

func (m *delegationMetrics) count(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.results[key]
}

// delegationSetup starts a receiver whose sink is the harness's spool, a
// filter, and a spool whose rules delegate postq to the filter.
func delegationSetup(t *testing.T, timeout string, mod func(*spool.Options)) (*harness, *filter, *switchSink, *delegationMetrics) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &switchSink{}
	recv := delegate.Serve(ln.Addr().String(), ln, sink, delegate.ReceiverOptions{Hostname: "mx.test"})
	t.Cleanup(func() { recv.Close(context.Background()) })
	f := newFilter(t, ln.Addr().String())
	rules := loadRules(t, fmt.Sprintf(`
service filter smtp = #{ delegator: #{ address: %q, timeout: %q }, receiver: %q };
#{
  postq: [
    action "before" || append_header("X-Before", "1"),
    delegate filter "scan" || if get_header("X-Filtered") == "yes" { next() } else { deny() },
  ],
  delivery: [ action "local" || maildir_all() ],
}`, f.addr, timeout, ln.Addr().String()))
	met := &delegationMetrics{}
	h := newHarness(t, func(o *spool.Options) {
		o.Rules = func() *policy.Rules { return rules }
		o.Delegator = &delegate.Client{Hostname: "mx.test"}
		o.Metrics = met
		if mod != nil {
			mod(o)
		}
	})
	sink.sp.Store(h.sp)
	return h, f, sink, met
}

// waitDone waits until no message is in incoming, working, deferred or
// delegated.
func waitDone(t *testing.T, h *harness, f *filter) map[string]int {
	t.Helper()
	defer func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.errs) > 0 {
			t.Errorf("the filter could not send back: %v", f.errs)
		}
	}()
	var st map[string]int
	waitFor(t, 20*time.Second, "the spool to be done", func() bool {
		st = h.sp.Stats()
		return st[spool.QueueIncoming]+st[spool.QueueWorking]+st[spool.QueueDeferred]+st[spool.QueueDelegated] == 0
	})
	return st
}

// TestDelegationResumes delegates a message at postq: the filter's copy
// comes back, the rules resume at the directive and deliver it.
func TestDelegationResumes(t *testing.T) {
	h, f, _, met := delegationSetup(t, "5s", nil)
	h.enqueue(saved("a@example.org", "b@example.net"), testMsg)
	h.run()
	if st := waitDone(t, h, f); st[spool.QueueDead] != 0 {
		t.Fatalf("stats %v", st)
	}
	got := h.maildirFiles("b@example.net")
	if len(got) != 1 {
		t.Fatalf("%d copies delivered, want 1", len(got))
	}
	if !strings.Contains(got[0], "X-Filtered: yes\n") || !strings.Contains(got[0], "X-Before: 1\n") ||
		!strings.Contains(got[0], "Hello Bob.") || strings.Contains(got[0], policy.DelegationHeader) {
		t.Errorf("delivered copy:\n%s", got[0])
	}
	if n := f.received(); n != 1 {
		t.Errorf("the filter got %d messages, want 1", n)
	}
	if n := met.count("filter/success"); n != 1 {
		t.Errorf("%d successful delegations counted, want 1", n)
	}
	err := h.sp.Return(context.Background(), delegate.Returned{ID: "nope"})
	if !errors.Is(err, delegate.ErrUnknownID) {
		t.Errorf("Return of an unknown id: %v", err)
	}
}

// TestDelegationNeverReturns: a filter that takes the message but never
// sends it back; the delegation times out, is retried, then given up: the
// message goes to the dead queue and its sender gets a DSN.
func TestDelegationNeverReturns(t *testing.T) {
	h, f, _, met := delegationSetup(t, "300ms", func(o *spool.Options) { o.RetryMax = 1 })
	f.never.Store(true)
	id := h.enqueue(saved("a@example.org", "b@example.net"), testMsg)
	h.run()
	waitFor(t, 20*time.Second, "the message to be dead", func() bool { return h.sp.Stats()[spool.QueueDead] == 1 })
	waitDone(t, h, f)
	if n := f.received(); n != 2 {
		t.Errorf("the filter got %d messages, want 2 (one retry)", n)
	}
	if got := h.maildirFiles("b@example.net"); len(got) != 0 {
		t.Errorf("delivered %d copies of a message whose delegation failed", len(got))
	}
	dsn := h.maildirFiles("a@example.org")
	if len(dsn) != 1 || !strings.Contains(dsn[0], "Undelivered Mail Returned to Sender") || !strings.Contains(dsn[0], "delegation") {
		t.Fatalf("DSNs: %q", dsn)
	}
	if ids := h.queueIDs(spool.QueueDead); len(ids) != 1 || ids[0] != id {
		t.Errorf("dead queue %v, want [%s]", ids, id)
	}
	if st := h.stateOf(spool.QueueDead, id); !strings.Contains(fmt.Sprint(st["dead"]), "delegation failed") {
		t.Errorf("state %v", st)
	}
	if n := met.count("filter/timeout"); n != 2 {
		t.Errorf("%d timeouts counted, want 2", n)
	}
}

// TestDelegationUnreachable: a filter nobody listens on fails each send;
// after the retries the message is dead.
func TestDelegationUnreachable(t *testing.T) {
	h, _, _, met := delegationSetup(t, "5s", func(o *spool.Options) { o.RetryMax = 2 })
	h.close()
	// The same rules, but the filter's address refuses connections.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	rules := loadRules(t, fmt.Sprintf(`
service filter smtp = #{ delegator: #{ address: %q, timeout: "1s" }, receiver: "127.0.0.1:1" };
#{ postq: [ delegate filter "scan" || next() ], delivery: [ action "local" || maildir_all() ] }`, dead))
	h.opts.Rules = func() *policy.Rules { return rules }
	h.open()
	h.enqueue(saved("<>", "b@example.net"), testMsg)
	h.run()
	waitFor(t, 20*time.Second, "the message to be dead", func() bool { return h.sp.Stats()[spool.QueueDead] == 1 })
	if n := met.count("filter/unreachable"); n != 3 {
		t.Errorf("%d unreachable counted, want 3", n)
	}
}

// TestDelegationRestart stops the spool while a message is delegated; the
// filter sends it back to the spool opened again, which resumes it.
func TestDelegationRestart(t *testing.T) {
	h, f, sink, _ := delegationSetup(t, "10s", nil)
	f.hold.Store(true)
	id := h.enqueue(saved("a@example.org", "b@example.net"), testMsg)
	h.run()
	waitFor(t, 10*time.Second, "the message to be sent to the filter", func() bool {
		b, err := os.ReadFile(filepath.Join(h.opts.Dir, spool.QueueDelegated, id, "delegation.json"))
		return err == nil && bytes.Contains(b, []byte(`"sent": true`))
	})
	h.close()
	sink.sp.Store(nil)
	h.open()
	if st := h.sp.Stats(); st[spool.QueueDelegated] != 1 {
		t.Fatalf("stats after the restart: %v", st)
	}
	sink.sp.Store(h.sp)
	h.run()
	f.release()
	if st := waitDone(t, h, f); st[spool.QueueDead] != 0 {
		t.Fatalf("stats %v", st)
	}
	got := h.maildirFiles("b@example.net")
	if len(got) != 1 || !strings.Contains(got[0], "X-Filtered: yes\n") {
		t.Fatalf("delivered: %q", got)
	}
	if n := f.received(); n != 1 {
		t.Errorf("the filter got %d messages, want 1", n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		t.Errorf("sending back: %v", f.errs)
	}
}

// TestDelegationReturnOnDiskAtRestart: the message came back while the
// workers were stopped; Open resumes it at once.
func TestDelegationReturnOnDiskAtRestart(t *testing.T) {
	h, f, sink, _ := delegationSetup(t, "10s", nil)
	f.hold.Store(true)
	id := h.enqueue(saved("a@example.org", "b@example.net"), testMsg)
	h.run()
	waitFor(t, 10*time.Second, "the message to be sent to the filter", func() bool {
		b, err := os.ReadFile(filepath.Join(h.opts.Dir, spool.QueueDelegated, id, "delegation.json"))
		return err == nil && bytes.Contains(b, []byte(`"sent": true`))
	})
	h.stop()
	h.stop = nil
	f.release() // taken by the spool, whose workers are stopped
	waitFor(t, 10*time.Second, "the return on disk", func() bool {
		_, err := os.Stat(filepath.Join(h.opts.Dir, spool.QueueDelegated, id, "returned.eml"))
		return err == nil
	})
	h.close()
	sink.sp.Store(nil)
	h.open()
	sink.sp.Store(h.sp)
	h.run()
	if st := waitDone(t, h, f); st[spool.QueueDead] != 0 {
		t.Fatalf("stats %v", st)
	}
	if got := h.maildirFiles("b@example.net"); len(got) != 1 || !strings.Contains(got[0], "X-Filtered: yes\n") {
		t.Fatalf("delivered: %q", got)
	}
}
