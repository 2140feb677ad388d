// Package milter is vsl-milter's milter front end: Postfix (smtpd_milters)
// or Sendmail connects over the milter protocol, each MTA callback drives the
// matching stage of a policy.Session, and the session's decisions become
// milter answers (SEMANTICS §8): continue, accept, reject, tempfail, discard
// or quarantine, plus the header, sender, recipient and body changes the
// rules recorded, replayed at the end of the message. Recipients the rules
// deliver locally (maildir, mbox, forward) are handed to a Deliverer before
// the message is accepted, and taken out of the MTA's envelope. A delegate
// directive hands the message to a third-party filter through a Delegator
// (package delegate) while the MTA waits at the end of the message; what
// the filter changed is applied like the rules' own modifications.
//
// The protocol itself is github.com/d--j/go-milter's (its low-level
// milter.Milter interface). This package knows the milter protocol, the MTAs'
// quirks and the mapping of decisions to answers. It must not know the vSL
// language nor how rules are loaded or reloaded (package policy and the serve
// command do), nor how a local delivery is written (package delivery, behind
// the Deliverer interface), nor how a message reaches a filter and comes
// back (package delegate, behind the Delegator interface).
//
// What the MTA is asked for depends on the rule set a connection takes (see
// newPlan): callbacks of stages without rules are negotiated away or made
// one-way, so that a rule set with a single mail rule costs one round trip
// per message beyond the protocol's minimum.
package milter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	milter "github.com/d--j/go-milter"
	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/internal/sockets"
	"github.com/vsl-milter/vsl-milter/policy"
)

// Options configure a Server.
type Options struct {
	// Rules returns the current rule set. Each new milter connection calls
	// it once and keeps the result until it closes, so a reload (Rules
	// returning a new set) takes effect for new connections only, and the
	// protocol options negotiated for a connection always match its rules.
	Rules func() *policy.Rules
	// OnError says what a script error answers (SEMANTICS §8); it also
	// applies to a panic recovered in a callback.
	OnError policy.OnError
	// Deadline bounds each stage's run (0: only the operation budget).
	// Whatever it is, a callback the MTA waits for sends it a progress
	// notification every 10 seconds while it runs (rules, local delivery),
	// so that the MTA's own timeout does not cut a long one.
	Deadline time.Duration
	// MaxMessageSize is how many bytes of the body the rules see (0: all).
	// The rest is dropped from what rules see, never from the mail: the MTA
	// keeps the whole message, and a local delivery gets it whole (the body
	// beyond the limit is spooled to a temporary file).
	MaxMessageSize int64
	// ServerName is the server's name (server_name()) when the MTA sends no
	// `j` macro.
	ServerName string
	// Deliverer delivers the recipients the rules chose to deliver locally
	// (maildir, mbox, forward). Nil: such messages are refused temporarily.
	Deliverer Deliverer
	// Observer is told every directive's outcome and every stage's verdict
	// (may be nil).
	Observer policy.Observer
	// Metrics counts sessions and transactions (may be nil).
	Metrics Metrics
	// Logger receives one line per transaction (outcome, deciding stage and
	// rule, errors with file:line:col), the rules' log() calls under the
	// name "script", and faults. Nil discards everything.
	Logger hclog.Logger
	// AppDir is the application directory under which the rules' write()
	// and dump() store files.
	AppDir string
	// Delegator hands messages to the filters of delegate directives and
	// waits for them to come back (package delegate's Manager). Nil: a
	// delegation fails, and the message gets the on_error answer.
	Delegator Delegator
	// DelegationBudget bounds the time the end of one message may spend
	// on its delegations altogether, each of which its service's timeout
	// bounds too (0: DefaultDelegationBudget). See DefaultDelegationBudget.
	DelegationBudget time.Duration
}

// DefaultDelegationBudget is the default of Options.DelegationBudget:
// Postfix's milter_content_timeout (300s), what an MTA gives a milter at
// the end of the message. Postfix restarts that timer at every progress
// notification, which the milter sends every 10 seconds while it waits
// for a filter, so the MTA itself would wait longer; but the SMTP client
// waits at most 10 minutes for the reply to its end of data (RFC 5321
// §4.5.3.2.6), and an MTA without progress support (protocol < 6) at most
// its own timeout. Sendmail's default end-of-message timeout (T=E:5m) is
// the same 5 minutes.
const DefaultDelegationBudget = 5 * time.Minute

// Delegator hands a message to the filter of a delegate directive and
// waits for it to come back.
type Delegator interface {
	// Delegate sends msg (the message as the filter must see it, with its
	// X-VSMTP-DELEGATION header) with the envelope from and rcpts to the
	// filter of d, and returns the header and body of the message the
	// filter sent back, for policy.Session.Resume. It must return when
	// ctx ends, and at the latest after the service's timeout.
	Delegate(ctx context.Context, d *policy.Delegation, from policy.MailAddr, rcpts []policy.MailAddr, msg []byte) ([]policy.Header, []byte, error)
}

// Metrics counts what the milter does. Its methods are called from many
// goroutines at once.
type Metrics interface {
	// SessionOpened is called when an MTA connection has negotiated.
	SessionOpened()
	// SessionClosed is called when that connection ends.
	SessionClosed()
	// Transaction is called once per transaction that ended with a verdict:
	// outcome is accept, reject, tempfail, discard or quarantine. A session
	// refused at connect or helo counts as one transaction.
	Transaction(outcome string)
}

// Deliverer delivers a message to the recipients the rules chose to deliver
// locally. It must be durable when it returns nil: the message is then
// accepted and those recipients are removed from the MTA's envelope. An
// error makes the whole message fail temporarily, so the MTA keeps it and
// tries again (a recipient delivered before the error may then get it
// twice). It must return when ctx is cancelled (server shutdown).
type Deliverer interface {
	// Deliver writes msg (the message as the rules left it, header and
	// body, CRLF line ends) for each of rcpts; from is the envelope sender.
	// msg is the session's buffer, reused once Deliver returns: Deliver
	// must not keep it.
	Deliver(ctx context.Context, msg []byte, from policy.MailAddr, rcpts []policy.DeliveryChoice) error
}

// defaultKeepalive is how long a callback may run before the server tells
// the MTA it is still working (SMFIR_PROGRESS): well below Postfix's
// milter_command_timeout (30s) and Sendmail's default timeouts.
const defaultKeepalive = 10 * time.Second

// Server is a milter server: it accepts MTA connections on any number of
// listeners and runs the rules for each. Its zero value is not usable; call
// NewServer.
type Server struct {
	opts      Options
	log       hclog.Logger
	scriptLog func(level, msg string)
	keepalive time.Duration // progress interval during a long callback (0: never)

	// ctx is the parent of every rule run and delivery; it is cancelled when
	// Shutdown stops waiting, so that callbacks still running end promptly.
	ctx    context.Context
	cancel context.CancelFunc

	plan atomic.Pointer[plan] // the plan of the last rule set seen

	// reads keeps the buffers of connections gone (*connBuffers),
	// so that each new connection does not allocate its own.
	reads sync.Pool

	mu        sync.Mutex
	shutdown  bool
	listeners map[net.Listener]struct{}
	conns     map[*trackedConn]struct{}
	sessions  int // sessions between negotiation and Cleanup
}

// NewServer returns a server for opts. opts.Rules must be set.
func NewServer(opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts: opts, log: log, keepalive: defaultKeepalive,
		ctx: ctx, cancel: cancel,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*trackedConn]struct{}{},
	}
	script := log.Named("script")
	s.scriptLog = func(level, msg string) { script.Log(scriptLevel(level), msg) }
	return s
}

// scriptLevel maps a rule's log(level, ...) level to hclog's.
func scriptLevel(level string) hclog.Level {
	switch level {
	case "trace":
		return hclog.Trace
	case "debug":
		return hclog.Debug
	case "warn", "warning":
		return hclog.Warn
	case "error":
		return hclog.Error
	}
	return hclog.Info
}

// Serve accepts MTA connections on ln until Shutdown is called, serving
// each on its own goroutine. It returns nil after Shutdown, or the error
// that made ln fail. It may be called for several listeners at once (a
// unix socket and a TCP port); ln is closed when Serve returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.shuttingDown() {
				return nil
			}
			if wait, ok := sockets.AcceptRetry(err, backoff); ok {
				backoff = wait
				s.log.Warn("accepting a milter connection failed; retrying", "error", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("milter: accepting connections on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		tc := newTrackedConn(c, s.log, &s.reads)
		s.mu.Lock()
		if s.shutdown {
			s.mu.Unlock()
			tc.Close()
			return nil
		}
		s.conns[tc] = struct{}{}
		tc.onClose = s.forget
		s.mu.Unlock()
		s.serveConn(tc)
	}
}

// forget drops a closed connection from those Shutdown waits for.
func (s *Server) forget(tc *trackedConn) {
	s.mu.Lock()
	delete(s.conns, tc)
	s.mu.Unlock()
}

// serveConn starts the milter protocol on one MTA connection with the
// rule set current when it arrived, and returns: the session runs on the
// goroutine go-milter starts for it. go-milter negotiates once per server,
// so each connection gets a go-milter server of its own, configured for
// its rules; the cost is a few small allocations. Its Serve returns once
// it has handed the connection over, so no goroutine of ours waits for
// each connection (one goroutine start and one wake-up fewer a session).
func (s *Server) serveConn(tc *trackedConn) {
	var rules *policy.Rules
	if s.opts.Rules != nil {
		rules = s.opts.Rules()
	}
	if rules == nil {
		s.log.Error("no rule set is loaded; closing the milter connection", "remote", tc.RemoteAddr())
		tc.Close()
		return
	}
	p := s.planFor(rules)
	opts := append(p.serverOptions[:len(p.serverOptions):len(p.serverOptions)], milter.WithDynamicMilter(
		func(version uint32, actions milter.OptAction, protocol milter.OptProtocol, _ milter.DataSize) milter.Milter {
			return s.newSession(p, tc)
		}))
	ln := &connListener{conn: tc}
	_ = milter.NewServer(opts...).Serve(ln)
	if !ln.handed {
		tc.Close()
	}
}

// planFor returns the negotiation plan of rules, reusing the last one when
// the rule set did not change.
func (s *Server) planFor(rules *policy.Rules) *plan {
	if p := s.plan.Load(); p != nil && p.rules == rules {
		return p
	}
	p := newPlan(rules)
	s.plan.Store(p)
	return p
}

// sessionStarted and sessionEnded count the sessions Shutdown waits for.
func (s *Server) sessionStarted() {
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	if s.opts.Metrics != nil {
		s.opts.Metrics.SessionOpened()
	}
}

func (s *Server) sessionEnded() {
	s.mu.Lock()
	s.sessions--
	s.mu.Unlock()
	if s.opts.Metrics != nil {
		s.opts.Metrics.SessionClosed()
	}
}

func (s *Server) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// idle reports whether no connection and no session is left.
func (s *Server) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) == 0 && s.sessions == 0
}

// Shutdown stops accepting connections and lets the sessions in progress
// finish (an MTA keeps its milter connection for a whole SMTP session).
// When ctx ends first, it closes the connections left, cancels the rules
// and deliveries still running, waits for their callbacks to return and
// returns ctx's error. Serve returns nil after Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("milter: closing listener %s: %w", ln.Addr(), err))
		}
	}
	s.mu.Unlock()

	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !s.idle() {
		select {
		case <-tick.C:
			continue
		case <-ctx.Done():
		}
		s.cancel()
		s.mu.Lock()
		conns := make([]*trackedConn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			c.Close() // which forgets it, under s.mu
		}
		for !s.idle() {
			<-tick.C
		}
		return errors.Join(append(errs, ctx.Err())...)
	}
	s.cancel()
	return errors.Join(errs...)
}

// trackedConn is an MTA connection that tells when it has been closed
// and lets through only milter packets go-milter can parse: go-milter
// v0.10.2 panics, in a goroutine of its own and so killing the process, on
// a packet of length 0 and on connect, envfrom or envrcpt data without the
// NUL that ends their first string. A bad packet fails the read, and
// go-milter closes the connection.
//
// It also gathers what go-milter writes into one write per answer:
// go-milter writes each packet's header and data separately, and the
// modifications at the end of a message come as packets of their own
// before the answer, so an end of message that deletes two recipients
// would cost the MTA and the milter five writes and reads instead of one.
// Bytes are queued until a packet other than a modification ends (an
// answer, a progress notification, the negotiation), or before the next
// read from the MTA, whichever comes first.
type trackedConn struct {
	net.Conn
	log     hclog.Logger
	rb      *connBuffers // nil once released
	pool    *sync.Pool   // where rb goes back
	pending []byte       // the bytes of rb.buf go-milter has not read yet
	once    sync.Once
	err     error
	onClose func(*trackedConn) // called once, after the connection is closed

	wmu       sync.Mutex
	out       []byte    // queued bytes
	outHdr    [5]byte   // the header (length, code) of the packet being queued
	outHdrN   int       // how much of outHdr has been queued
	outLeft   int       // data bytes of that packet still to come
	deadlined time.Time // when the write deadline was last moved
}

// connBuffers are what a connection reads with (the buffered reader of
// the socket and the packet being handed over to go-milter) and what its
// session keeps a message in (the body for the rules, the message text
// for local delivery). They outlive the connection, for the next one.
type connBuffers struct {
	in   *bufio.Reader
	buf  []byte
	body []byte
	text []byte
}

// newTrackedConn wraps c, with buffers from pool (a sync.Pool of
// *connBuffers, which the connection's release puts them back into).
func newTrackedConn(c net.Conn, log hclog.Logger, pool *sync.Pool) *trackedConn {
	rb, _ := pool.Get().(*connBuffers)
	if rb == nil {
		rb = &connBuffers{in: bufio.NewReaderSize(nil, readBuffer)}
	}
	rb.in.Reset(quickAck(c))
	return &trackedConn{Conn: c, log: log, rb: rb, pool: pool}
}

// messageBuffers hands the session the body and text buffers, empty; they
// are the session's until it gives them back to release.
func (c *trackedConn) messageBuffers() (body, text []byte) {
	if c.rb == nil {
		return nil, nil
	}
	body, text = c.rb.body[:0], c.rb.text[:0]
	c.rb.body, c.rb.text = nil, nil
	return body, text
}

// release gives the buffers back to the pool, with the session's body and
// text buffers (nothing may use them any more). The session calls it from
// Cleanup, which go-milter calls on the goroutine that reads, after its
// last read; a Read after it fails. Buffers a large message grew are not
// kept.
func (c *trackedConn) release(body, text []byte) {
	if c.rb == nil {
		return
	}
	c.rb.in.Reset(nil)
	keep := func(b []byte) []byte {
		if cap(b) > keptBuffer {
			return nil
		}
		return b[:0]
	}
	c.rb.buf, c.rb.body, c.rb.text = keep(c.rb.buf), keep(body), keep(text)
	c.pool.Put(c.rb)
	c.rb, c.pending = nil, nil
}

// readBuffer is the size of a connection's buffered reader: a body chunk
// (Postfix sends up to 64 KiB, Sendmail 64 KiB, go-milter's client 64 KiB
// by default) and the packets after it, in one read of what has arrived.
// With bufio's default 4 KiB, a 4 KiB chunk took two reads.
const readBuffer = 16 << 10

// keptBuffer is the largest buffer kept for the next connection.
const keptBuffer = 256 << 10

// maxPacket bounds a milter packet: an MTA sends body chunks of at most
// 1 MiB (the largest size the protocol negotiates); go-milter alone would
// allocate up to 512 MiB for a length an MTA announces.
const maxPacket = 4 << 20

// writeTimeout bounds each write to the MTA (go-milter's default for its
// own writes, which the server turns off: see trackedConn.flush).
const writeTimeout = 10 * time.Second

// maxQueued is how many bytes Write queues at most before sending them.
const maxQueued = 64 << 10

// Write queues p, and sends what is queued when an answer ends (see
// trackedConn). An error is that of sending.
func (c *trackedConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.out = append(c.out, p...)
	send := false
	for rest := p; len(rest) > 0; {
		if c.outHdrN < len(c.outHdr) {
			n := copy(c.outHdr[c.outHdrN:], rest)
			c.outHdrN, rest = c.outHdrN+n, rest[n:]
			if c.outHdrN < len(c.outHdr) {
				break
			}
			c.outLeft = int(binary.BigEndian.Uint32(c.outHdr[:4])) - 1
		} else {
			n := min(c.outLeft, len(rest))
			c.outLeft, rest = c.outLeft-n, rest[n:]
		}
		if c.outLeft <= 0 { // the packet is complete
			c.outHdrN, c.outLeft = 0, 0
			if !modification(c.outHdr[4]) {
				send = true
			}
		}
	}
	if send || len(c.out) >= maxQueued {
		if err := c.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// modification reports whether a packet the milter sends with code is a
// modification, which an answer always follows.
func modification(code byte) bool {
	switch code {
	case '+', '-', '2', 'b', 'e', 'h', 'i', 'm', 'q':
		return true
	}
	return false
}

// flush sends the queued bytes; c.wmu is held. The write deadline is moved
// writeTimeout ahead at most once a second, rather than set and cleared
// around every packet as go-milter does (two timer updates per packet), so
// a write may get a second less than writeTimeout.
func (c *trackedConn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	if now := time.Now(); now.Sub(c.deadlined) > time.Second {
		c.Conn.SetWriteDeadline(now.Add(writeTimeout))
		c.deadlined = now
	}
	_, err := c.Conn.Write(c.out)
	if cap(c.out) > maxQueued {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	return err
}

// Read hands go-milter the bytes of checked packets. Before it waits for
// the MTA, it sends what is still queued.
func (c *trackedConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		c.wmu.Lock()
		err := c.flush()
		c.wmu.Unlock()
		if err != nil {
			return 0, err
		}
		if c.rb == nil {
			return 0, net.ErrClosed
		}
		if err := c.nextPacket(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// nextPacket reads and checks the next packet.
func (c *trackedConn) nextPacket() error {
	rb := c.rb
	hdr, err := rb.in.Peek(4)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	n := binary.BigEndian.Uint32(hdr)
	if n == 0 || n > maxPacket {
		return c.bad(fmt.Errorf("a packet of %d bytes (1 to %d allowed)", n, maxPacket))
	}
	size := 4 + int(n)
	if cap(rb.buf) < size {
		rb.buf = make([]byte, size)
	}
	b := rb.buf[:size]
	if _, err := io.ReadFull(rb.in, b); err != nil {
		return err
	}
	if err := checkPacket(b[4], b[5:]); err != nil {
		return c.bad(err)
	}
	c.pending = b
	return nil
}

func (c *trackedConn) bad(err error) error {
	err = fmt.Errorf("milter: malformed packet from the MTA: %w", err)
	c.log.Warn("closing the milter connection", "remote", c.RemoteAddr(), "error", err)
	return err
}

// checkPacket checks what go-milter takes for granted in a command's data.
func checkPacket(code byte, data []byte) error {
	switch code {
	case 'C': // connect: hostname NUL family [port address]
		i := bytes.IndexByte(data, 0)
		if i < 0 || i+1 >= len(data) {
			return errors.New("connect data without hostname and family")
		}
		if fam := data[i+1]; (fam == 'L' || fam == '4' || fam == '6') && len(data) < i+4 {
			return errors.New("connect data without port")
		}
	case 'M', 'R': // envfrom, envrcpt: address NUL [args]
		if bytes.IndexByte(data, 0) < 0 {
			return fmt.Errorf("%c data without a NUL-terminated address", code)
		}
	}
	return nil
}

// Close closes the connection once and calls onClose. Nothing queued is
// lost that matters: every answer is sent when it ends, so what may be
// queued is the start of an answer the MTA will not get anyway.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.err = c.Conn.Close()
		if c.onClose != nil {
			c.onClose(c)
		}
	})
	return c.err
}

// connListener hands one connection to a go-milter server: the first
// Accept returns it, the second fails, which ends the server's Serve (the
// session it started goes on: go-milter sessions outlive Serve).
type connListener struct {
	conn   *trackedConn
	handed bool // go-milter calls Accept from one goroutine
}

// Accept returns the connection, then net.ErrClosed.
func (l *connListener) Accept() (net.Conn, error) {
	if !l.handed {
		l.handed = true
		return l.conn, nil
	}
	return nil, net.ErrClosed
}

// Close does nothing: the connection's life is the session's.
func (l *connListener) Close() error { return nil }

// Addr returns the connection's local address.
func (l *connListener) Addr() net.Addr { return l.conn.LocalAddr() }
