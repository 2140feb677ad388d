package smtpd_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/config"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/smtpd"
)

// testDomain is server.domain in every test.
const testDomain = "mx.example.com"

// harness is a Server on a loopback port with a fake queue, fake metrics
// and a log buffer.
type harness struct {
	t       testing.TB
	srv     *smtpd.Server
	cfg     *config.Config
	opts    smtpd.Options
	queue   *fakeQueue
	metrics *fakeMetrics
	logs    *syncBuffer
	addr    string
	served  chan error
}

// setup says how a harness is built.
type setup struct {
	toml string               // extra vsmtp.toml text ($CERT and $KEY stand for the test certificate)
	kind smtpd.Kind           // the listener's kind (Relay by default)
	edit func(*smtpd.Options) // changes to the options, after the defaults
}

// newHarness loads the rules src and serves them.
func newHarness(t testing.TB, src string, s setup) *harness {
	t.Helper()
	h := &harness{t: t, queue: &fakeQueue{}, metrics: &fakeMetrics{}, logs: &syncBuffer{}, served: make(chan error, 1)}
	h.cfg = loadConfig(t, s.toml)
	h.opts = smtpd.Options{
		Config:   h.cfg,
		Rules:    loadRules(t, src).get,
		Queue:    h.queue,
		Metrics:  h.metrics,
		Logger:   hclog.New(&hclog.LoggerOptions{Output: h.logs, Level: hclog.Trace}),
		Deadline: 5 * time.Second,
	}
	if s.edit != nil {
		s.edit(&h.opts)
	}
	srv, err := smtpd.New(h.opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	go func() { h.served <- srv.ServeListener(ln, s.kind) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-h.served; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	})
	return h
}

// loadConfig parses a vsmtp.toml made of extra; server.domain is
// testDomain.
func loadConfig(t testing.TB, extra string) *config.Config {
	t.Helper()
	cert := testCert(t)
	text := strings.NewReplacer("$CERT", string(cert.certPEM), "$KEY", string(cert.keyPEM)).Replace(extra)
	cfg, err := config.Parse("vsmtp.toml", []byte(text))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	cfg.Server.Domain = testDomain
	return cfg
}

// ruleSet holds a rule set for Options.Rules.
type ruleSet struct{ r *policy.Rules }

func (rs ruleSet) get() *policy.Rules { return rs.r }

func loadRules(t testing.TB, src string) ruleSet {
	t.Helper()
	if src == "" {
		src = "#{}"
	}
	r, err := policy.Load("main.vsl", []byte(src), policy.Options{})
	if err != nil {
		t.Fatalf("loading rules: %v\n%s", err, src)
	}
	return ruleSet{r}
}

// queued is one message the fake queue took.
type queued struct {
	quarantine string // "" for Enqueue
	saved      policy.Saved
	message    string
}

// summary renders a queued message for dialogue expectations.
func (q queued) summary() string {
	var b strings.Builder
	if q.quarantine != "" {
		fmt.Fprintf(&b, "quarantine name=%s", q.quarantine)
	} else {
		b.WriteString("enqueue")
	}
	from := q.saved.MailFrom.String()
	fmt.Fprintf(&b, " from=<%s> rcpts=", from)
	for i, r := range q.saved.Rcpts {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "<%s>", r.String())
	}
	if q.saved.AuthID != "" {
		fmt.Fprintf(&b, " authid=%s", q.saved.AuthID)
	}
	if q.saved.Secured {
		b.WriteString(" secured")
	}
	if q.saved.Finished != "" {
		fmt.Fprintf(&b, " finished=%s", q.saved.Finished)
	}
	return b.String()
}

// fakeQueue records what the server queues; err, when set, fails every
// call.
type fakeQueue struct {
	mu    sync.Mutex
	items []queued
	err   error
	block chan struct{} // when set, calls wait for it (or ctx)
}

func (q *fakeQueue) Enqueue(ctx context.Context, saved policy.Saved, message []byte) (string, error) {
	if err := q.wait(ctx); err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return "", q.err
	}
	q.items = append(q.items, queued{saved: saved, message: string(message)})
	return fmt.Sprintf("Q%d", len(q.items)), nil
}

func (q *fakeQueue) Quarantine(ctx context.Context, name string, saved policy.Saved, message []byte) error {
	if err := q.wait(ctx); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.items = append(q.items, queued{quarantine: name, saved: saved, message: string(message)})
	return nil
}

func (q *fakeQueue) wait(ctx context.Context) error {
	q.mu.Lock()
	block := q.block
	q.mu.Unlock()
	if block == nil {
		return nil
	}
	select {
	case <-block:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *fakeQueue) setErr(err error) {
	q.mu.Lock()
	q.err = err
	q.mu.Unlock()
}

func (q *fakeQueue) all() []queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.items)
}

// fakeMetrics records what the server counts.
type fakeMetrics struct {
	mu           sync.Mutex
	open         int
	opened       int
	transactions []string
}

func (m *fakeMetrics) SessionOpened() {
	m.mu.Lock()
	m.open++
	m.opened++
	m.mu.Unlock()
}

func (m *fakeMetrics) SessionClosed() {
	m.mu.Lock()
	m.open--
	m.mu.Unlock()
}

func (m *fakeMetrics) Transaction(outcome string) {
	m.mu.Lock()
	m.transactions = append(m.transactions, outcome)
	m.mu.Unlock()
}

func (m *fakeMetrics) outcomes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.transactions)
}

// sessions returns how many sessions were opened and how many are open.
func (m *fakeMetrics) sessions() (opened, open int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.opened, m.open
}

// waitClosed waits until every session opened has closed (the server
// counts a session's end after its last reply).
func (h *harness) waitClosed() {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, open := h.metrics.sessions(); open == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatal("sessions still open after 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rawClient speaks SMTP line by line, to check replies exactly.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return newRawClient(t, c)
}

func newRawClient(t testing.TB, c net.Conn) *rawClient {
	return &rawClient{t: t, conn: c, r: bufio.NewReader(c)}
}

// send writes lines, each ended with CRLF, in one write.
func (c *rawClient) send(lines ...string) {
	c.t.Helper()
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	c.sendRaw(b.String())
}

// sendRaw writes s as is.
func (c *rawClient) sendRaw(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("sending %q: %v", s, err)
	}
}

// line reads one line of the server's, without its CRLF.
func (c *rawClient) line() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		return l, err
	}
	if !strings.HasSuffix(l, "\r\n") {
		return l, fmt.Errorf("reply line %q does not end with CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n"), nil
}

// expect reads one line per want and checks each exactly.
func (c *rawClient) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		got, err := c.line()
		if err != nil {
			c.t.Fatalf("waiting for %q: %v (got %q)", w, err, got)
		}
		if got != w {
			c.t.Fatalf("reply line:\n got %q\nwant %q", got, w)
		}
	}
}

// expectClosed checks that the server closes the connection without
// sending anything more.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	l, err := c.line()
	if err == nil {
		c.t.Fatalf("expected the connection to be closed, got %q", l)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		c.t.Fatalf("expected the connection to be closed, got %v", err)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// cert is the test certificate: self-signed for testDomain and 127.0.0.1.
type cert struct {
	certPEM, keyPEM []byte
	tls             tls.Certificate
	pool            *x509.CertPool
}

var (
	certOnce sync.Once
	theCert  cert
	certErr  error
)

// testCert returns the test certificate, made once per test binary.
func testCert(t testing.TB) cert {
	t.Helper()
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			certErr = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: testDomain},
			DNSNames:     []string{testDomain},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			certErr = err
			return
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			certErr = err
			return
		}
		theCert.certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		theCert.keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
		theCert.tls, certErr = tls.X509KeyPair(theCert.certPEM, theCert.keyPEM)
		if certErr != nil {
			return
		}
		parsed, err := x509.ParseCertificate(der)
		if err != nil {
			certErr = err
			return
		}
		theCert.pool = x509.NewCertPool()
		theCert.pool.AddCert(parsed)
	})
	if certErr != nil {
		t.Fatalf("making the test certificate: %v", certErr)
	}
	return theCert
}

// clientTLS is a client TLS configuration trusting the test certificate.
func clientTLS(t testing.TB) *tls.Config {
	return &tls.Config{RootCAs: testCert(t).pool, ServerName: testDomain}
}

// tlsTOML configures TLS at level with the test certificate.
func tlsTOML(level string) string {
	return fmt.Sprintf("[server.tls]\nsecurity_level = %q\ncertificate = '''$CERT'''\nprivate_key = '''$KEY'''\n", level)
}
