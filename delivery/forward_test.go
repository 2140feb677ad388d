package delivery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/policy"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"mx.example.com", "mx.example.com:25"},
		{"MX.Example.COM:2525", "mx.example.com:2525"},
		{"smtp://mx.example.com:587", "mx.example.com:587"},
		{"SMTP://mx.example.com", "mx.example.com:25"},
		{"smtp://mx.example.com:587/", "mx.example.com:587"},
		{"192.0.2.1", "192.0.2.1:25"},
		{"192.0.2.1:26", "192.0.2.1:26"},
		{"[2001:db8::1]:2525", "[2001:db8::1]:2525"},
		{"[2001:db8::1]", "[2001:db8::1]:25"},
		{"2001:db8::1", "[2001:db8::1]:25"},
		{"smtp://[::1]:10025", "[::1]:10025"},
		{" relay ", "relay:25"},
		{"", ""},
		{"smtp://", ""},
		{"host:0", ""},
		{"host:65536", ""},
		{"host:smtp", ""},
		{"host:", ""},
		{"a:b:c", ""},
		{"[mx.example.com]:587", "mx.example.com:587"}, // Postfix's spelling
		{"[mx.example.com]", "mx.example.com:25"},
		{"[2001:db8::1", ""},
		{"smtps://mx.example.com", ""},
		{"lmtp://mx.example.com", ""},
		{"smtp://user@mx.example.com", ""},
		{"smtp://mx.example.com/path", ""},
		{"mx example.com", ""},
		{"../../etc", ""},
		{"bücher.example", ""},
	} {
		got, err := parseTarget(tc.in)
		if tc.want == "" {
			if err == nil || temporary(err) {
				t.Errorf("parseTarget(%q) = %q, %v; want a permanent error", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseTarget(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// received is one message a test server accepted.
type received struct {
	helos []string // the EHLO names of the connection, in order
	tls   bool
	from  string
	to    []string
	data  string
}

// backend is the server side of go-smtp for the tests. Recipients whose
// local part is "busy" get 450, "unknown" 550; a sender "reject" gets 550
// at MAIL; a message whose Subject is "defer" gets 451 at the end of DATA.
type backend struct {
	mu   sync.Mutex
	msgs []received
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{b: b, c: c}, nil
}

func (b *backend) received() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.msgs...)
}

type session struct {
	b *backend
	c *smtp.Conn
	r received
}

func (s *session) Reset()        { s.r = received{} }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if strings.HasPrefix(from, "reject@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender refused"}
	}
	_, s.r.tls = s.c.TLSConnectionState()
	s.r.from = from
	s.r.helos = append(s.r.helos, s.c.Hostname())
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	switch {
	case strings.HasPrefix(to, "busy@"):
		return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}
	case strings.HasPrefix(to, "unknown@"):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.r.to = append(s.r.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if strings.Contains(string(data), "Subject: defer\r\n") {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	}
	s.r.data = string(data)
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, s.r)
	s.b.mu.Unlock()
	return nil
}

// startServer runs a go-smtp server on 127.0.0.1:0 and returns its address.
func startServer(t *testing.T, b *backend, tlsConfig *tls.Config) string {
	t.Helper()
	s := smtp.NewServer(b)
	s.Domain = "target.test"
	s.TLSConfig = tlsConfig
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.ErrorLog = discardLogger{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return l.Addr().String()
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

// selfSigned makes a certificate for 127.0.0.1 and returns the server's
// TLS config and a pool trusting it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "target.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}, pool
}

func TestForward(t *testing.T) {
	b := &backend{}
	target := startServer(t, b, nil)
	a := newTestAgent(t, Options{Hostname: "relay.test"})
	err := a.Deliver(context.Background(), []byte(testMsg), addr("<alice@example.org>"), []policy.DeliveryChoice{
		choice("bob@example.com", policy.Forward, target),
		choice("carol@example.com", policy.Forward, "smtp://"+target),
		choice("dave@example.com", policy.Deliver, ""), // left to the MTA
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := b.received()
	if len(msgs) != 1 {
		t.Fatalf("target got %d messages, want one session carrying both recipients", len(msgs))
	}
	m := msgs[0]
	if m.from != "alice@example.org" || strings.Join(m.to, ",") != "bob@example.com,carol@example.com" {
		t.Errorf("envelope %q -> %q", m.from, m.to)
	}
	if m.data != testMsg {
		t.Errorf("data:\n%q\nwant\n%q", m.data, testMsg)
	}
	if m.tls {
		t.Errorf("TLS without STARTTLS on offer")
	}
	for _, h := range m.helos {
		if h != "relay.test" {
			t.Errorf("EHLO %q, want relay.test", h)
		}
	}

	// The null sender is MAIL FROM:<>.
	if err := a.Deliver(context.Background(), []byte(testMsg), policy.MailAddr{Null: true},
		[]policy.DeliveryChoice{choice("bob@example.com", policy.Forward, target)}); err != nil {
		t.Fatal(err)
	}
	if msgs := b.received(); len(msgs) != 2 || msgs[1].from != "" {
		t.Errorf("null sender: %+v", msgs)
	}
}

func TestForwardReplies(t *testing.T) {
	b := &backend{}
	target := startServer(t, b, nil)
	a := newTestAgent(t, Options{})
	ctx := context.Background()

	// Per recipient: 450 temporary, 550 permanent, the others delivered.
	err := a.Deliver(ctx, []byte(testMsg), addr("a@example.org"), []policy.DeliveryChoice{
		choice("busy@example.com", policy.Forward, target),
		choice("bob@example.com", policy.Forward, target),
		choice("unknown@example.com", policy.Forward, target),
	})
	var e *Error
	if !errors.As(err, &e) || len(e.Failures) != 2 {
		t.Fatalf("got %v, want two failures", err)
	}
	busy, unknown := e.Failures[0], e.Failures[1]
	if busy.Rcpt.Local != "busy" || !busy.Temporary || busy.Dest != target || busy.Transport != policy.Forward {
		t.Errorf("450: %+v", busy)
	}
	if unknown.Rcpt.Local != "unknown" || unknown.Temporary {
		t.Errorf("550: %+v", unknown)
	}
	var se *smtp.SMTPError
	if !errors.As(&unknown, &se) || se.Code != 550 {
		t.Errorf("550 reply not in the chain: %v", unknown.Err)
	}
	if !e.Temporary() {
		t.Errorf("Error.Temporary() = false with a 450 among the failures")
	}
	for _, s := range []string{"<unknown@example.com>", "forward", target, "550", "permanent", "<busy@example.com>", "450"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if msgs := b.received(); len(msgs) != 1 || strings.Join(msgs[0].to, ",") != "bob@example.com" {
		t.Errorf("delivered %+v, want bob only", msgs)
	}

	// MAIL refused (550): every recipient fails permanently.
	err = a.Deliver(ctx, []byte(testMsg), addr("reject@example.org"), []policy.DeliveryChoice{
		choice("bob@example.com", policy.Forward, target), choice("carol@example.com", policy.Forward, target),
	})
	if !errors.As(err, &e) || len(e.Failures) != 2 || e.Temporary() || !strings.Contains(err.Error(), "MAIL FROM") {
		t.Errorf("MAIL 550: %v", err)
	}

	// 451 at the end of DATA: temporary for the accepted recipients; the
	// refused one keeps its own reply.
	deferMsg := []byte("Subject: defer\r\n\r\nlater\r\n")
	err = a.Deliver(ctx, deferMsg, addr("a@example.org"), []policy.DeliveryChoice{
		choice("bob@example.com", policy.Forward, target), choice("unknown@example.com", policy.Forward, target),
	})
	if !errors.As(err, &e) || len(e.Failures) != 2 || !e.Failures[0].Temporary || e.Failures[1].Temporary ||
		!strings.Contains(e.Failures[0].Error(), "451") || !strings.Contains(e.Failures[1].Error(), "550") {
		t.Errorf("DATA 451: %v", err)
	}

	// All recipients refused: no DATA.
	n := len(b.received())
	err = a.Deliver(ctx, []byte(testMsg), addr("a@example.org"), []policy.DeliveryChoice{choice("unknown@example.com", policy.Forward, target)})
	if f := failureOf(t, err); f.Temporary {
		t.Errorf("550: %v", err)
	}
	if len(b.received()) != n {
		t.Errorf("DATA sent with no recipient accepted")
	}
}

func TestForwardSTARTTLS(t *testing.T) {
	serverTLS, pool := selfSigned(t)
	broken := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return nil, errors.New("no certificate")
	}}
	for _, tc := range []struct {
		name      string
		server    *tls.Config
		client    *tls.Config
		delivered bool // else: a temporary failure and nothing received
		tls       bool
	}{
		{"verified", serverTLS, &tls.Config{RootCAs: pool}, true, true},
		{"opportunistic", serverTLS, nil, true, true},
		{"untrusted certificate", serverTLS, &tls.Config{RootCAs: x509.NewCertPool()}, false, false},
		{"wrong name", serverTLS, &tls.Config{RootCAs: pool, ServerName: "other.test"}, false, false},
		{"opportunistic, handshake fails: plain text", broken, nil, true, false},
		{"configured, handshake fails", broken, &tls.Config{RootCAs: pool}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &backend{}
			target := startServer(t, b, tc.server)
			a := newTestAgent(t, Options{Hostname: "relay.test", TLSConfig: tc.client, ForwardTimeout: 5 * time.Second})
			err := a.Deliver(context.Background(), []byte(testMsg), addr("a@example.org"),
				[]policy.DeliveryChoice{choice("bob@example.com", policy.Forward, target)})
			msgs := b.received()
			if !tc.delivered {
				f := failureOf(t, err)
				if !f.Temporary || !strings.Contains(err.Error(), "TLS") {
					t.Errorf("failure: %v", err)
				}
				if len(msgs) != 0 {
					t.Errorf("delivered in spite of the TLS failure: %+v", msgs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 1 || msgs[0].tls != tc.tls || msgs[0].data != testMsg {
				t.Fatalf("received %+v, want one message, TLS %v", msgs, tc.tls)
			}
			if msgs[0].helos[0] != "relay.test" {
				t.Errorf("EHLO %q", msgs[0].helos)
			}
		})
	}
}

// TestForwardEHLOBeforeSTARTTLS checks the name given before STARTTLS,
// which go-smtp alone would send as "localhost".
func TestForwardEHLOBeforeSTARTTLS(t *testing.T) {
	serverTLS, pool := selfSigned(t)
	b := &backend{}
	var mu sync.Mutex
	var helos []string
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		mu.Lock()
		helos = append(helos, c.Hostname())
		mu.Unlock()
		return b.NewSession(c)
	}))
	s.Domain, s.TLSConfig, s.ErrorLog = "target.test", serverTLS, discardLogger{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	a := newTestAgent(t, Options{Hostname: "relay.test", TLSConfig: &tls.Config{RootCAs: pool}})
	if err := a.Deliver(context.Background(), []byte(testMsg), addr("a@example.org"),
		[]policy.DeliveryChoice{choice("bob@example.com", policy.Forward, l.Addr().String())}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// One session before STARTTLS, one after.
	if strings.Join(helos, ",") != "relay.test,relay.test" {
		t.Errorf("EHLO names %q, want relay.test before and after STARTTLS", helos)
	}
}

func TestForwardServerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := l.Addr().String()
	l.Close()
	a := newTestAgent(t, Options{})
	err = a.Deliver(context.Background(), []byte(testMsg), addr("a@example.org"), []policy.DeliveryChoice{
		choice("bob@example.com", policy.Forward, target), choice("carol@example.com", policy.Forward, target),
	})
	var e *Error
	if !errors.As(err, &e) || len(e.Failures) != 2 {
		t.Fatalf("got %v, want two failures", err)
	}
	for _, f := range e.Failures {
		if !f.Temporary || f.Dest != target || !strings.Contains(f.Error(), "connect") {
			t.Errorf("failure: %v", f.Error())
		}
	}
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

func TestForwardTimeouts(t *testing.T) {
	target := silentServer(t)
	rcpts := []policy.DeliveryChoice{choice("bob@example.com", policy.Forward, target)}

	// ForwardTimeout bounds the session.
	a := newTestAgent(t, Options{ForwardTimeout: 200 * time.Millisecond})
	start := time.Now()
	err := a.Deliver(context.Background(), []byte(testMsg), addr("a@example.org"), rcpts)
	if f := failureOf(t, err); !f.Temporary ||
		!(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)) {
		t.Errorf("timeout: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v with a 200ms forward timeout", d)
	}

	// So does the caller's context.
	a = newTestAgent(t, Options{ForwardTimeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	start = time.Now()
	err = a.Deliver(ctx, []byte(testMsg), addr("a@example.org"), rcpts)
	if f := failureOf(t, err); !f.Temporary || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v after the context was cancelled", d)
	}
}

func TestForwardInvalidTarget(t *testing.T) {
	a := newTestAgent(t, Options{})
	err := a.Deliver(context.Background(), []byte(testMsg), addr("a@example.org"),
		[]policy.DeliveryChoice{choice("bob@example.com", policy.Forward, "smtp://mx.example.com/x")})
	f := failureOf(t, err)
	if f.Temporary || f.Dest != "smtp://mx.example.com/x" || !strings.Contains(err.Error(), "invalid forward target") {
		t.Errorf("failure: %v", err)
	}
}

// TestDeliverMixed delivers one message by every transport at once; only
// the forward to a dead target fails.
func TestDeliverMixed(t *testing.T) {
	b := &backend{}
	target := startServer(t, b, nil)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	root := t.TempDir()
	a := newTestAgent(t, Options{MaildirRoot: root + "/", MboxRoot: root})
	err := a.Deliver(context.Background(), []byte(testMsg), addr("a@example.org"), []policy.DeliveryChoice{
		choice("md@example.com", policy.Maildir, ""),
		choice("md@EXAMPLE.com", policy.Maildir, ""), // the same mailbox: one copy
		choice("mb@example.com", policy.Mbox, ""),
		choice("fw@example.com", policy.Forward, dead),
		choice("ok@example.com", policy.Forward, target),
		choice("mta@example.com", policy.Deliver, ""),
		choice("fw@Example.com", policy.Forward, "smtp://"+dead), // the same copy again
	})
	var e *Error
	if !errors.As(err, &e) || len(e.Failures) != 2 {
		t.Fatalf("got %v, want the two spellings of fw failed", err)
	}
	for i, want := range []policy.DeliveryChoice{choice("fw@example.com", policy.Forward, dead), choice("fw@Example.com", policy.Forward, "smtp://"+dead)} {
		if f := e.Failures[i]; f.Rcpt != want.Rcpt || f.Dest != want.Target || !f.Temporary {
			t.Errorf("failure %d: %v", i, f.Error())
		}
	}
	if got := listDir(t, root+"/example.com/md/new"); len(got) != 1 {
		t.Errorf("maildir copies %v, want one", got)
	}
	if _, err := os.Stat(root + "/example.com/mb"); err != nil {
		t.Errorf("mbox: %v", err)
	}
	if got := b.received(); len(got) != 1 || got[0].to[0] != "ok@example.com" {
		t.Errorf("forwarded %+v", got)
	}
	if got := allFiles(t, root); strings.Contains(strings.Join(got, " "), "mta") {
		t.Errorf("a Deliver recipient was written: %v", got)
	}

	// Nothing to do: nil, nothing written.
	if err := a.Deliver(context.Background(), []byte(testMsg), addr("a@example.org"),
		[]policy.DeliveryChoice{choice("x@example.com", policy.Deliver, "")}); err != nil {
		t.Error(err)
	}
}
