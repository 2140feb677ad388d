package smtpd_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/config"
	"github.com/vsl-milter/vsl-milter/logging"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/smtpd"
)

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// freePort returns a loopback address nothing listens on (for Serve, which
// takes its addresses from the configuration).
func freePort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln := mustListen(t)
	defer ln.Close()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestMessage checks what the queue gets: the envelope after the rules,
// and the message after preq's changes, with a Received field, dot
// stuffing undone and every line ended with CRLF.
func TestMessage(t *testing.T) {
	h := newHarness(t, `#{
  mail: [ action "stamp" || add_header("X-Stamp", "mail") ],
  rcpt: [ action "copy" || if rcpt() == "jane@example.org" { bcc("archive@example.org") } ],
  preq: [ action "scan" || { set_header("Subject", "[scanned] " + get_header("Subject")); remove_header("X-Remove") } ],
}`, setup{})
	c := dialRaw(t, h.addr)
	c.expect("220 mx.example.com Service ready")
	c.send("EHLO client.example", "MAIL FROM:<joe@example.com>", "RCPT TO:<jane@example.org>", "DATA")
	c.expect("250-mx.example.com", "250-PIPELINING", "250-SIZE 10000000", "250-8BITMIME", "250 SMTPUTF8",
		"250 Ok", "250 Ok", "354 Start mail input; end with <CRLF>.<CRLF>")
	c.sendRaw("Subject: hello\r\nX-Remove: me\r\nX-Folded: a\r\n b\r\n\r\n" +
		"..dot\r\nbare lf\n.\n.. \r\nend\r\n.\r\n")
	c.expect("250 Ok")
	c.send("QUIT")
	c.expect("221 Service closing transmission channel")

	q := h.queue.all()
	if len(q) != 1 {
		t.Fatalf("queued %d messages, want 1", len(q))
	}
	s := q[0].saved
	if s.MailFrom.String() != "joe@example.com" || len(s.Rcpts) != 2 || s.Rcpts[1].String() != "archive@example.org" {
		t.Errorf("envelope: from %v, rcpts %v", s.MailFrom, s.Rcpts)
	}
	if s.Helo != "client.example" || s.ServerName != testDomain || s.ClientAddr.Addr() != netip.MustParseAddr("127.0.0.1") ||
		s.ServerAddr.String() != h.addr || s.MessageID == "" || s.Secured || s.AuthID != "" {
		t.Errorf("saved connection: %+v", s)
	}
	// The header added at mail goes on top (policy prepends the fields
	// added before the message), then the Received field.
	msg, ok := strings.CutPrefix(q[0].message, "X-Stamp: mail\r\n")
	if !ok {
		t.Fatalf("the message does not start with X-Stamp:\n%s", q[0].message)
	}
	received, rest, _ := strings.Cut(msg, "\r\nSubject:")
	rest = "Subject:" + rest
	wantReceived := "Received: from client.example ([127.0.0.1])\r\n\tby mx.example.com with ESMTP id " + s.MessageID + ";\r\n\t"
	if !strings.HasPrefix(received, wantReceived) {
		t.Errorf("the message does not start with %q:\n%s", wantReceived, msg)
	}
	if date := strings.TrimPrefix(received, wantReceived); !strings.Contains(date, time.Now().Format("2006")) {
		t.Errorf("Received date %q", date)
	}
	want := "Subject: [scanned] hello\r\nX-Folded: a\r\n b\r\n\r\n.dot\r\nbare lf\r\n\r\n. \r\nend\r\n"
	if rest != want {
		t.Errorf("message after Received:\n got %q\nwant %q", rest, want)
	}
}

func TestQueueFailure(t *testing.T) {
	h := newHarness(t, "", setup{})
	h.queue.setErr(errors.New("disk full"))
	c := dialRaw(t, h.addr)
	c.expect("220 mx.example.com Service ready")
	send := func() {
		c.send("MAIL FROM:<joe@example.com>", "RCPT TO:<jane@example.org>", "DATA")
		c.expect("250 Ok", "250 Ok", "354 Start mail input; end with <CRLF>.<CRLF>")
		c.send("Subject: x", "", "x", ".")
	}
	c.send("HELO client.example")
	c.expect("250 Ok")
	send()
	c.expect("451 Requested action aborted: local error in processing")
	if len(h.queue.all()) != 0 {
		t.Fatal("a message was queued")
	}
	if !strings.Contains(h.logs.String(), "disk full") {
		t.Errorf("the queue's error was not logged:\n%s", h.logs)
	}
	// The client keeps the message and tries again.
	h.queue.setErr(nil)
	send()
	c.expect("250 Ok")
	c.send("QUIT")
	c.expect("221 Service closing transmission channel")
	if n := len(h.queue.all()); n != 1 {
		t.Fatalf("queued %d messages after the retry, want 1", n)
	}
	h.waitClosed()
	if got := h.metrics.outcomes(); strings.Join(got, ",") != "tempfail,accept" {
		t.Errorf("transactions %v", got)
	}
}

// TestCredentialsNotLogged authenticates, rightly and wrongly, with the
// logger at trace level, the rules' runs logged and the rules logging, and
// looks for the credentials in the logs.
func TestCredentialsNotLogged(t *testing.T) {
	h := newHarness(t, `#{
  authenticate: [
    action "log" || log("info", "authenticating"),
    rule "joe" || if auth().authid == "joe" && auth().authpass == "s3cr3t-pw" { accept() } else { reject() },
  ],
}`, setup{
		toml: "[server.smtp.auth]\nenable_dangerous_mechanism_in_clair = true\n",
		edit: func(o *smtpd.Options) { o.Observer = logging.Observer{Log: o.Logger} },
	})
	for _, a := range []sasl.Client{
		sasl.NewPlainClient("", "joe", "s3cr3t-pw"),
		sasl.NewPlainClient("", "joe", "wr0ng-pw"),
		sasl.NewLoginClient("joe", "s3cr3t-pw"),
		sasl.NewLoginClient("joe", "wr0ng-pw"),
	} {
		c, err := smtp.Dial(h.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Hello("client.example")
		c.Auth(a)
		c.Quit()
		c.Close()
	}
	h.waitClosed()
	logs := h.logs.String()
	if !strings.Contains(logs, "authenticating") || !strings.Contains(logs, "stage done: stage=authenticate") {
		t.Fatalf("the rules' log or the observer's lines are missing:\n%s", logs)
	}
	for _, secret := range []string{"s3cr3t-pw", "wr0ng-pw",
		base64.StdEncoding.EncodeToString([]byte("\x00joe\x00s3cr3t-pw")),
		base64.StdEncoding.EncodeToString([]byte("s3cr3t-pw")),
		base64.StdEncoding.EncodeToString([]byte("wr0ng-pw")),
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold %q:\n%s", secret, logs)
		}
	}
}

func TestClientCountMax(t *testing.T) {
	h := newHarness(t, "", setup{toml: "[server]\nclient_count_max = 1\n"})
	first := dialRaw(t, h.addr)
	first.expect("220 mx.example.com Service ready")
	second := dialRaw(t, h.addr)
	second.expect("554 Cannot process connection, closing")
	second.expectClosed()
	first.send("QUIT")
	first.expect("221 Service closing transmission channel")
	h.waitClosed()
	third := dialRaw(t, h.addr)
	third.expect("220 mx.example.com Service ready")
}

func TestSoftErrorDelay(t *testing.T) {
	h := newHarness(t, "", setup{toml: "[server.smtp.error]\nsoft_count = 2\ndelay = \"300ms\"\n"})
	c := dialRaw(t, h.addr)
	c.expect("220 mx.example.com Service ready")
	for i, slow := range []bool{false, true, true} {
		start := time.Now()
		c.send("FOO")
		c.expect("500 Syntax error command unrecognized")
		// The reply is sent, then the delay runs before the next command
		// is read: measure the round trip of a NOOP after it.
		c.send("NOOP")
		c.expect("250 Ok")
		elapsed := time.Since(start)
		if slow && elapsed < 300*time.Millisecond || !slow && elapsed >= 300*time.Millisecond {
			t.Errorf("error %d: took %v; delayed: %v", i+1, elapsed, slow)
		}
	}
}

func TestShutdown(t *testing.T) {
	h := newHarness(t, "", setup{})
	idle := dialRaw(t, h.addr)
	idle.expect("220 mx.example.com Service ready")
	busy := dialRaw(t, h.addr)
	busy.expect("220 mx.example.com Service ready")
	busy.send("HELO client.example", "MAIL FROM:<joe@example.com>", "RCPT TO:<jane@example.org>", "DATA")
	busy.expect("250 Ok", "250 Ok", "250 Ok", "354 Start mail input; end with <CRLF>.<CRLF>")
	busy.send("Subject: x", "")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- h.srv.Shutdown(ctx)
	}()
	// The idle client is told at once; the busy one finishes its message.
	idle.expect("421 mx.example.com Service not available, closing transmission channel")
	idle.expectClosed()
	busy.send("the end", ".")
	busy.expect("250 Ok", "421 mx.example.com Service not available, closing transmission channel")
	busy.expectClosed()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := len(h.queue.all()); n != 1 {
		t.Errorf("queued %d messages, want 1", n)
	}
	if _, err := net.Dial("tcp", h.addr); err == nil {
		t.Error("the listener still accepts after Shutdown")
	}
}

// TestShutdownDeadline checks that Shutdown gives up on a session stuck in
// the queue when its context ends, cancelling the queue call.
func TestShutdownDeadline(t *testing.T) {
	h := newHarness(t, "", setup{})
	h.queue.block = make(chan struct{})
	c := dialRaw(t, h.addr)
	c.expect("220 mx.example.com Service ready")
	c.send("HELO client.example", "MAIL FROM:<joe@example.com>", "RCPT TO:<jane@example.org>", "DATA")
	c.expect("250 Ok", "250 Ok", "250 Ok", "354 Start mail input; end with <CRLF>.<CRLF>")
	c.send("Subject: x", "", "x", ".")
	time.Sleep(50 * time.Millisecond) // the session is now waiting in Enqueue
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := h.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want a deadline error", err)
	}
	if len(h.queue.all()) != 0 {
		t.Error("a message was queued")
	}
}

func TestServe(t *testing.T) {
	relay, sub, subs := freePort(t), freePort(t), freePort(t)
	cfg := loadConfig(t, fmt.Sprintf("[server.interfaces]\naddr = [%q]\naddr_submission = [%q]\naddr_submissions = [%q]\n", relay, sub, subs)+tlsTOML("May"))
	srv, err := smtpd.New(smtpd.Options{Config: cfg, Rules: loadRules(t, "").get, Queue: &fakeQueue{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	dial := func(addr netip.AddrPort, implicit bool) {
		t.Helper()
		var c *smtp.Client
		var err error
		for range 100 { // Serve may not be listening yet
			if implicit {
				c, err = smtp.DialTLS(addr.String(), clientTLS(t))
			} else {
				c, err = smtp.Dial(addr.String())
			}
			if err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("dialing %s: %v", addr, err)
		}
		defer c.Close()
		if err := c.Hello("client.example"); err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if starttls, _ := c.Extension("STARTTLS"); starttls == implicit {
			t.Errorf("%s: STARTTLS offered: %v", addr, starttls)
		}
		c.Quit()
	}
	dial(relay, false)
	dial(sub, false)
	dial(subs, true)
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", relay.String()); err == nil {
		t.Error("still listening after ctx was cancelled")
	}
	shutdown, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := srv.Shutdown(shutdown); err != nil {
		t.Fatal(err)
	}
}

func TestServeWithoutTLSSkipsSubmissions(t *testing.T) {
	relay := freePort(t)
	cfg := loadConfig(t, fmt.Sprintf("[server.interfaces]\naddr = [%q]\naddr_submission = []\naddr_submissions = [\"127.0.0.1:1\"]\n", relay))
	srv, err := smtpd.New(smtpd.Options{Config: cfg, Rules: loadRules(t, "").get, Queue: &fakeQueue{}})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v", err)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func TestServeErrors(t *testing.T) {
	none := loadConfig(t, "[server.interfaces]\naddr = []\naddr_submission = []\naddr_submissions = []\n")
	srv, err := smtpd.New(smtpd.Options{Config: none, Rules: loadRules(t, "").get, Queue: &fakeQueue{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(context.Background()); !errors.Is(err, smtpd.ErrNoListener) {
		t.Errorf("Serve with no address: %v, want ErrNoListener", err)
	}
	busy := mustListen(t)
	defer busy.Close()
	taken := loadConfig(t, fmt.Sprintf("[server.interfaces]\naddr = [%q]\naddr_submission = []\naddr_submissions = []\n", busy.Addr()))
	srv, err = smtpd.New(smtpd.Options{Config: taken, Rules: loadRules(t, "").get, Queue: &fakeQueue{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Errorf("Serve on a busy address: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	cfg := loadConfig(t, "")
	rules := loadRules(t, "").get
	missingCert := loadConfig(t, "[server.tls]\nsecurity_level = \"May\"\ncertificate = \"/nonexistent/cert.pem\"\nprivate_key = \"/nonexistent/key.pem\"\n")
	for name, opts := range map[string]smtpd.Options{
		"no config":          {Rules: rules, Queue: &fakeQueue{}},
		"no rules":           {Config: cfg, Queue: &fakeQueue{}},
		"no queue":           {Config: cfg, Rules: rules},
		"unreadable TLS key": {Config: missingCert, Rules: rules, Queue: &fakeQueue{}},
	} {
		if _, err := smtpd.New(opts); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestTLSFromFiles(t *testing.T) {
	dir := t.TempDir()
	cert := testCert(t)
	writeFile(t, dir+"/cert.pem", cert.certPEM)
	writeFile(t, dir+"/key.pem", cert.keyPEM)
	writeFile(t, dir+"/vsmtp.toml", []byte("[server.tls]\nsecurity_level = \"May\"\nprotocol_version = \"TLSv1.3\"\ncertificate = \"cert.pem\"\nprivate_key = \"key.pem\"\n"))
	cfg, err := config.Load(dir + "/vsmtp.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.Domain = testDomain
	h := newHarness(t, "", setup{edit: func(o *smtpd.Options) { o.Config = cfg }})
	c, err := smtp.DialStartTLS(h.addr, clientTLS(t))
	if err != nil {
		t.Fatalf("STARTTLS with the certificate read from files: %v", err)
	}
	defer c.Close()
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	state, _ := c.TLSConnectionState()
	if state.Version != 0x0304 {
		t.Errorf("TLS version %#x, want TLS 1.3 only", state.Version)
	}
}

// TestConcurrentClients sends from many clients at once (run with -race).
func TestConcurrentClients(t *testing.T) {
	h := newHarness(t, `#{ rcpt: [ rule "r" || if rcpt().local_part == "nobody" { reject() } else { next() } ] }`, setup{})
	const clients, each = 8, 5
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(h.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for j := range each {
				if err := c.Mail(fmt.Sprintf("c%d@example.com", i), nil); err != nil {
					t.Error(err)
					return
				}
				if err := c.Rcpt("nobody@example.org", nil); err == nil {
					t.Error("nobody was accepted")
				}
				if err := c.Rcpt(fmt.Sprintf("m%d@example.org", j), nil); err != nil {
					t.Error(err)
					return
				}
				w, err := c.Data()
				if err != nil {
					t.Error(err)
					return
				}
				fmt.Fprintf(w, "Subject: %d/%d\r\n\r\nbody\r\n", i, j)
				if err := w.Close(); err != nil {
					t.Error(err)
					return
				}
			}
			c.Quit()
		}()
	}
	wg.Wait()
	if n := len(h.queue.all()); n != clients*each {
		t.Errorf("queued %d messages, want %d", n, clients*each)
	}
	h.waitClosed()
	if opened, _ := h.metrics.sessions(); opened != clients {
		t.Errorf("%d sessions opened, want %d", opened, clients)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestOnErrorDeny(t *testing.T) {
	h := newHarness(t, `#{ mail: [ rule "boom" || { throw "boom" } ] }`, setup{
		edit: func(o *smtpd.Options) { o.OnError = policy.OnErrorDeny },
	})
	c := dialRaw(t, h.addr)
	c.expect("220 mx.example.com Service ready")
	c.send("HELO client.example", "MAIL FROM:<joe@example.com>")
	c.expect("250 Ok", "554 permanent problems with the remote server")
	// on_error = deny is vSMTP's behaviour: a deny, which ends the session.
	c.expectClosed()
	h.waitClosed()
	if !strings.Contains(h.logs.String(), "boom") {
		t.Errorf("the script error was not logged:\n%s", h.logs)
	}
}

func TestNoRules(t *testing.T) {
	h := newHarness(t, "", setup{edit: func(o *smtpd.Options) { o.Rules = func() *policy.Rules { return nil } }})
	c := dialRaw(t, h.addr)
	c.expect("421 mx.example.com Service not available, closing transmission channel")
	c.expectClosed()
}

// TestRulesTakenPerConnection checks that a connection keeps the rule set
// it started with when the rules are replaced.
func TestRulesTakenPerConnection(t *testing.T) {
	var mu sync.Mutex
	current := loadRules(t, "").get()
	h := newHarness(t, "", setup{edit: func(o *smtpd.Options) {
		o.Rules = func() *policy.Rules {
			mu.Lock()
			defer mu.Unlock()
			return current
		}
	}})
	old := dialRaw(t, h.addr)
	old.expect("220 mx.example.com Service ready")
	mu.Lock()
	current = loadRules(t, `#{ mail: [ rule "r" || reject("550 5.7.1 new rules") ] }`).get()
	mu.Unlock()
	old.send("HELO client.example", "MAIL FROM:<joe@example.com>")
	old.expect("250 Ok", "250 Ok")
	fresh := dialRaw(t, h.addr)
	fresh.expect("220 mx.example.com Service ready")
	fresh.send("HELO client.example", "MAIL FROM:<joe@example.com>")
	fresh.expect("250 Ok", "550 5.7.1 new rules")
}

// TestLongLines sends lines longer than the server's read buffer, with a
// CRLF split across two reads, and checks they arrive whole.
func TestLongLines(t *testing.T) {
	h := newHarness(t, "", setup{})
	c := dialRaw(t, h.addr)
	c.expect("220 mx.example.com Service ready")
	c.send("HELO client.example", "MAIL FROM:<joe@example.com>", "RCPT TO:<jane@example.org>", "DATA")
	c.expect("250 Ok", "250 Ok", "250 Ok", "354 Start mail input; end with <CRLF>.<CRLF>")
	body := strings.Repeat("a", 10000) + "\r\n" + strings.Repeat("b", 4095) + "\r\n" + "." + strings.Repeat("c", 5000) + "\r\n"
	c.sendRaw("Subject: long\r\n\r\n" + body + ".\r\n")
	c.expect("250 Ok")
	q := h.queue.all()
	if len(q) != 1 {
		t.Fatalf("queued %d messages", len(q))
	}
	want := strings.Repeat("a", 10000) + "\r\n" + strings.Repeat("b", 4095) + "\r\n" + strings.Repeat("c", 5000) + "\r\n"
	if _, got, _ := strings.Cut(q[0].message, "Subject: long\r\n\r\n"); got != want {
		t.Errorf("body of %d bytes, want %d", len(got), len(want))
	}
}

func TestLongCommand(t *testing.T) {
	h := newHarness(t, "", setup{})
	c := dialRaw(t, h.addr)
	c.expect("220 mx.example.com Service ready")
	c.send("NOOP "+strings.Repeat("x", 13000), "NOOP")
	c.expect("500 Syntax error command unrecognized", "250 Ok")
}
