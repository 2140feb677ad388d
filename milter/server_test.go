package milter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/vsl-milter/vsl-milter/milter"
	"github.com/vsl-milter/vsl-milter/policy"
)

// dialerFunc adapts a function to go-milter's Dialer.
type dialerFunc func(network, addr string) (net.Conn, error)

func (f dialerFunc) Dial(network, addr string) (net.Conn, error) { return f(network, addr) }

// TestGoroutinesPerConnection checks that an open milter connection costs
// the server one goroutine, go-milter's session, and that closing them
// leaves none behind.
func TestGoroutinesPerConnection(t *testing.T) {
	h := newHarness(t, "unix", `#{ mail: [ rule "r" || next() ] }`)
	base := runtime.NumGoroutine()
	const n = 10
	var sessions []*gomilter.ClientSession
	for i := 0; i < n; i++ {
		s, err := h.client().Session(nil)
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	waitFor(t, "the sessions to start", func() bool { return h.metrics.opened.Load() == n })
	if extra := runtime.NumGoroutine() - base; extra > n+2 {
		t.Errorf("%d goroutines for %d connections, want about one each", extra, n)
	}
	for _, s := range sessions {
		s.Close()
	}
	waitFor(t, "the sessions to end", func() bool { return h.metrics.closed.Load() == n })
	waitFor(t, "their goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
}

// TestClientDropsMidMessage checks that an MTA connection lost in the
// middle of a message leaks nothing (session, goroutine, spool file) and
// that the server goes on serving.
func TestClientDropsMidMessage(t *testing.T) {
	spool := t.TempDir()
	t.Setenv("TMPDIR", spool)
	h := newHarness(t, "unix", `#{ preq: [ rule "r" || next() ] }`, func(o *milter.Options) { o.MaxMessageSize = 16 })
	if got, want := h.run(defaultMessage()), atEOM("accept"); got != want {
		t.Fatalf("first transaction:\n%s", got)
	}
	waitFor(t, "the first session to end", func() bool { return h.metrics.closed.Load() == 1 })
	base := runtime.NumGoroutine()

	var conn net.Conn
	dial := dialerFunc(func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		conn = c
		return c, err
	})
	s, err := h.client(gomilter.WithDialer(dial)).Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) {
			return s.Conn("client.example", gomilter.FamilyInet, 4711, "192.0.2.10")
		},
		func() (*gomilter.Action, error) { return s.Helo("client.example") },
		func() (*gomilter.Action, error) { return s.Mail("a@example.org", "") },
		func() (*gomilter.Action, error) { return s.Rcpt("b@example.net", "") },
		func() (*gomilter.Action, error) { return s.DataStart() },
		func() (*gomilter.Action, error) { return s.HeaderField("Subject", "half a message", nil) },
		func() (*gomilter.Action, error) { return s.HeaderEnd() },
		func() (*gomilter.Action, error) { return s.BodyChunk([]byte(strings.Repeat("x", 1000))) },
	} {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the body to be spooled", func() bool {
		files, _ := filepath.Glob(filepath.Join(spool, "vsl-milter-body-*"))
		return len(files) == 1
	})
	conn.Close() // no QUIT, no ABORT

	waitFor(t, "the dropped session to end", func() bool { return h.metrics.closed.Load() == h.metrics.opened.Load() })
	waitFor(t, "the spool file to be removed", func() bool {
		files, _ := filepath.Glob(filepath.Join(spool, "vsl-milter-body-*"))
		return len(files) == 0
	})
	waitFor(t, "the session's goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
	if got, want := h.run(defaultMessage()), atEOM("accept"); got != want {
		t.Errorf("after the drop:\n%s\nwant:\n%s", got, want)
	}
}

// TestBadPackets checks that malformed milter packets close the
// connection without harm to the server.
func TestBadPackets(t *testing.T) {
	h := newHarness(t, "tcp", `#{ mail: [ rule "m" || next() ] }`)
	negotiate := "\x00\x00\x00\x0dO\x00\x00\x00\x06\x00\x00\x01\xff\x00\x1f\xff\xff"
	tests := []struct{ name, data string }{
		{"not a negotiation", "\x00\x00\x00\x01Z"},
		{"a huge length", "\xff\xff\xff\xffO"},
		{"a short negotiation", "\x00\x00\x00\x03O\x00\x00"},
		{"connect without data", negotiate + "\x00\x00\x00\x01C"},
		{"connect with a bad family", negotiate + "\x00\x00\x00\x07Chost\x00X"},
		{"an unknown command", negotiate + "\x00\x00\x00\x01!"},
		{"a truncated packet", negotiate + "\x00\x00\x00\x10Hhel"},
		// These crash go-milter v0.10.2 itself (the server guards it).
		{"an empty packet", "\x00\x00\x00\x00"},
		{"an empty packet after negotiation", negotiate + "\x00\x00\x00\x00"},
		{"connect without NUL", negotiate + "\x00\x00\x00\x05Chost"},
		{"connect without port", negotiate + "\x00\x00\x00\x07Chost\x004"},
		{"mail without NUL", negotiate + "\x00\x00\x00\x0cMa@example.org"},
		{"rcpt without NUL", negotiate + "\x00\x00\x00\x0cRb@example.net"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tt.data); err != nil {
				t.Fatal(err)
			}
			if tt.name == "a truncated packet" {
				c.(*net.TCPConn).CloseWrite()
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Fatalf("the server did not close the connection: %v", err)
			}
		})
	}
	waitFor(t, "every session to end", func() bool { return h.metrics.closed.Load() == h.metrics.opened.Load() })
	if got, want := h.run(defaultMessage()), atEOM("accept"); got != want {
		t.Errorf("after bad packets:\n%s\nwant:\n%s", got, want)
	}
}

// TestConcurrentConnections runs many connections at once, each seeing
// only its own transaction.
func TestConcurrentConnections(t *testing.T) {
	h := newHarness(t, "unix", `#{ preq: [ action "tag" || append_header("X-Sender", mail_from().to_string()) ] }`)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := defaultMessage()
			msg.from = fmt.Sprintf("sender%d@example.org", i)
			want := atEOM("accept", fmt.Sprintf(`AddHeader "X-Sender" "%s"`, msg.from))
			for j := 0; j < 3; j++ {
				if got := h.run(msg); got != want {
					t.Errorf("connection %d:\n%s\nwant:\n%s", i, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := h.metrics.counts(); got != "accept=60" {
		t.Errorf("metrics: %s", got)
	}
}

// TestReloadUnderLoad swaps the rule set continuously while 20
// connections run transactions: every connection is answered by one rule
// set from its first event to its last (it keeps the rules it started
// with), no session fails, and both sets answer.
func TestReloadUnderLoad(t *testing.T) {
	h := newHarness(t, "unix", "")
	set := func(name string) *policy.Rules {
		return h.load(fmt.Sprintf(`#{ mail: [ rule "m" || next() ], rcpt: [ rule "r" || reject("550 5.1.1 %s") ] }`, name))
	}
	sets := []*policy.Rules{set("A"), set("B")}
	stop := make(chan struct{})
	reloaded := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				reloaded <- n
				return
			case <-time.After(200 * time.Microsecond):
				n++
				h.rules.Store(sets[n%2])
			}
		}
	}()
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 25; j++ {
				s, err := h.client().Session(nil)
				if err != nil {
					t.Error(err)
					return
				}
				var replies []string
				steps := []func() (*gomilter.Action, error){
					func() (*gomilter.Action, error) {
						return s.Conn("client.example", gomilter.FamilyInet, 4711, "192.0.2.10")
					},
					func() (*gomilter.Action, error) { return s.Helo("client.example") },
					func() (*gomilter.Action, error) { return s.Mail("a@example.org", "") },
					func() (*gomilter.Action, error) { return s.Rcpt("b@example.net", "") },
					func() (*gomilter.Action, error) { return s.Rcpt("c@example.net", "") },
				}
				for k, step := range steps {
					act, err := step()
					if err != nil {
						t.Errorf("connection %d, session %d: %v", i, j, err)
						s.Close()
						return
					}
					if k >= 3 { // the recipients
						replies = append(replies, act.SMTPReply)
					}
				}
				s.Close()
				if len(replies) != 2 || replies[0] != replies[1] {
					t.Errorf("connection %d, session %d: recipients answered %q, want one rule set's answer twice", i, j, replies)
					return
				}
				mu.Lock()
				seen[replies[0]]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	n := <-reloaded
	if seen["550 5.1.1 A"] == 0 || seen["550 5.1.1 B"] == 0 || seen["550 5.1.1 A"]+seen["550 5.1.1 B"] != 500 {
		t.Errorf("answers %v after %d reloads, want 500 from both rule sets", seen, n)
	}
}

// TestSeveralTransactions checks that the transactions of one connection
// are independent: an aborted one leaves nothing to the next.
func TestSeveralTransactions(t *testing.T) {
	h := newHarness(t, "unix", `#{
  mail: [ action "archive a" || if mail_from().local_part == "a" { bcc("archive@example.com") } ],
  rcpt: [ rule "r" || next() ],
}`)
	s, err := h.client().Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	must := func(act *gomilter.Action, err error) {
		t.Helper()
		if err != nil || act.Type != gomilter.ActionContinue {
			t.Fatalf("got %v %v, want continue", act, err)
		}
	}
	must(s.Conn("client.example", gomilter.FamilyInet, 4711, "192.0.2.10"))
	must(s.Helo("client.example"))
	tx := func(from string, abort bool) string {
		t.Helper()
		must(s.Mail(from, ""))
		must(s.Rcpt("r@example.net", ""))
		if abort {
			if err := s.Abort(nil); err != nil {
				t.Fatal(err)
			}
			return ""
		}
		must(s.DataStart())
		must(s.HeaderEnd())
		mods, act, err := s.BodyReadFrom(strings.NewReader("hi\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		out := act.String()
		for _, m := range mods {
			out += " " + m.String()
		}
		return out
	}
	tx("a@example.org", true)
	if got := tx("b@example.org", false); got != "Accept" {
		t.Errorf("after an aborted transaction: %s", got)
	}
	if got := tx("a@example.org", false); got != `Accept AddRcpt "<archive@example.com>" ""` {
		t.Errorf("third transaction: %s", got)
	}
	if got := tx("b@example.org", false); got != "Accept" {
		t.Errorf("fourth transaction: %s", got)
	}
}

// TestReload checks that a connection keeps the rule set it started
// with, and new connections take the current one.
func TestReload(t *testing.T) {
	h := newHarness(t, "unix", `#{ mail: [ rule "old" || deny("550 5.7.1 old rules") ] }`)
	old, err := h.client().Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	h.load(`#{ mail: [ rule "new" || deny("550 5.7.1 new rules") ] }`)
	if got, want := h.run(defaultMessage()), answered("mail", "550 5.7.1 new rules"); got != want {
		t.Errorf("new connection:\n%s\nwant:\n%s", got, want)
	}
	if _, err := old.Conn("client.example", gomilter.FamilyUnknown, 0, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Helo("client.example"); err != nil {
		t.Fatal(err)
	}
	if act, err := old.Mail("a@example.org", ""); err != nil || act.SMTPReply != "550 5.7.1 old rules" {
		t.Errorf("old connection: %v %v, want the old rules' answer", act, err)
	}
}

// TestKeepalive checks that a long end of message sends progress
// notifications, so that an MTA with a short timeout keeps waiting, for
// each message of a connection (the session re-arms one timer).
func TestKeepalive(t *testing.T) {
	const rules = `#{ delivery: [ action "local" || maildir_all() ] }`
	run := func(h *harness) error {
		h.deliverer.delay = 600 * time.Millisecond
		s, err := h.client(gomilter.WithReadTimeout(250 * time.Millisecond)).Session(nil)
		if err != nil {
			return err
		}
		defer s.Close()
		if _, err := s.Conn("client.example", gomilter.FamilyInet, 4711, "192.0.2.10"); err != nil {
			return err
		}
		if _, err := s.Helo("client.example"); err != nil {
			return err
		}
		for i := 1; i <= 2; i++ {
			for _, step := range []func() (*gomilter.Action, error){
				func() (*gomilter.Action, error) { return s.Mail("a@example.org", "") },
				func() (*gomilter.Action, error) { return s.Rcpt("b@example.net", "") },
				func() (*gomilter.Action, error) { return s.DataStart() },
				func() (*gomilter.Action, error) { return s.HeaderEnd() },
			} {
				if _, err := step(); err != nil {
					return fmt.Errorf("message %d: %w", i, err)
				}
			}
			_, act, err := s.BodyReadFrom(strings.NewReader("hi\r\n"))
			if err == nil && act.Type != gomilter.ActionAccept {
				err = fmt.Errorf("eom: %v", act)
			}
			if err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
		}
		return nil
	}

	h := newHarness(t, "unix", rules, func(s *milter.Server) { milter.SetKeepalive(s, 50*time.Millisecond) })
	if err := run(h); err != nil {
		t.Errorf("with progress notifications: %v", err)
	}
	if n := len(h.deliverer.deliveries()); n != 2 {
		t.Errorf("%d deliveries, want 2", n)
	}

	h = newHarness(t, "unix", rules, func(s *milter.Server) { milter.SetKeepalive(s, 0) })
	if err := run(h); err == nil {
		t.Errorf("without progress notifications the client should have timed out")
	}
}

// TestShutdown checks that Shutdown lets a session finish, and closes the
// sessions left when its context ends.
func TestShutdown(t *testing.T) {
	t.Run("graceful", func(t *testing.T) {
		h := newHarness(t, "unix", `#{ mail: [ rule "m" || next() ] }`)
		s, err := h.client().Session(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Conn("client.example", gomilter.FamilyInet, 4711, "192.0.2.10"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- h.srv.Shutdown(context.Background()) }()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a session in progress", err)
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := net.Dial("unix", h.addr); err == nil {
			t.Errorf("the server still accepts connections")
		}
		if act, err := s.Helo("client.example"); err != nil || act.Type != gomilter.ActionContinue {
			t.Errorf("the session in progress: %v %v", act, err)
		}
		if act, err := s.Mail("a@example.org", ""); err != nil || act.Type != gomilter.ActionContinue {
			t.Errorf("the session in progress: %v %v", act, err)
		}
		s.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Shutdown did not return after the last session ended")
		}
		if err := h.srv.Serve(h.listen()); err != nil {
			t.Errorf("Serve after Shutdown: %v, want nil", err)
		}
	})

	t.Run("deadline", func(t *testing.T) {
		h := newHarness(t, "unix", `#{ delivery: [ action "local" || maildir_all() ] }`)
		h.deliverer.block = make(chan struct{}) // never delivers: only the context ends it
		errc := make(chan error, 1)
		go func() {
			s, err := h.client().Session(nil)
			if err != nil {
				errc <- err
				return
			}
			defer s.Close()
			s.Conn("client.example", gomilter.FamilyInet, 4711, "192.0.2.10")
			s.Helo("client.example")
			s.Mail("a@example.org", "")
			s.Rcpt("b@example.net", "")
			s.DataStart()
			s.HeaderEnd()
			_, act, err := s.BodyReadFrom(strings.NewReader("hi\r\n"))
			if err == nil && act.Type == gomilter.ActionAccept {
				err = errors.New("accepted")
			}
			errc <- err
		}()
		waitFor(t, "the session", func() bool { return h.metrics.opened.Load() == 1 })
		time.Sleep(50 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := h.srv.Shutdown(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown: %v, want the context's deadline", err)
		}
		if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
			t.Errorf("Shutdown took %v", d)
		}
		// The client sees the connection closed, or the temporary failure
		// of the delivery that Shutdown cancelled: never an accept.
		if err := <-errc; err != nil && err.Error() == "accepted" {
			t.Errorf("the message whose delivery Shutdown cancelled was accepted")
		}
		if o, c := h.metrics.opened.Load(), h.metrics.closed.Load(); o != c {
			t.Errorf("%d sessions opened, %d closed after Shutdown", o, c)
		}
	})
}
