// Package smtpd is vsl-milter's standalone mode: an SMTP server for small
// sites without Postfix. It listens on the interfaces of [server.interfaces],
// speaks SMTP with vSMTP's replies (SEMANTICS §9), and at each step of the
// dialogue drives the same policy.Session as the milter front end: connect
// when a connection is accepted (before the greeting), helo, authenticate
// (AUTH PLAIN and LOGIN), mail, rcpt, and preq once the message has
// arrived. It turns the session's Decisions into replies; an accepted
// message is handed to a Queue, durably, before the client is told 250.
//
// The package knows SMTP, TLS and SASL, and the limits of [server] and
// [server.smtp]. It must not know the vSL language nor what rules decide
// (package policy does), nor how a message is spooled, run through postq
// and delivery, or delivered (the Queue does).
//
// The SMTP dialogue is written here rather than on go-smtp's server: that
// server's replies are fixed ("220 ... ESMTP Service Ready", "250 2.0.0
// Roger, ..."), it has one read timeout, its own error threshold and no
// hook before the greeting, so it cannot give vSMTP's behaviour. go-smtp's
// client drives the tests, and github.com/emersion/go-sasl provides PLAIN.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/config"
	"github.com/vsl-milter/vsl-milter/internal/sockets"
	"github.com/vsl-milter/vsl-milter/logging"
	"github.com/vsl-milter/vsl-milter/policy"
)

// Queue takes the messages the server accepts. The real one is the spool,
// which later runs the postq and delivery stages and delivers.
type Queue interface {
	// Enqueue stores an accepted message: saved is its transaction (no
	// password), message its text after the rules' preq changes. The
	// message must be durable (fsynced) when Enqueue returns nil: the client
	// is then told 250. An error makes the server answer 451, so the client
	// keeps the message and tries again. id names the message in logs. It
	// must return when ctx is cancelled.
	Enqueue(ctx context.Context, saved policy.Saved, message []byte) (id string, err error)
	// Quarantine stores a message a rule quarantined at preq under
	// app.dirpath/<name>; it is never delivered. As for Enqueue, it must be
	// durable when it returns nil, and an error answers 451.
	Quarantine(ctx context.Context, name string, saved policy.Saved, message []byte) error
}

// Metrics counts what the server does. Its methods are called from many
// goroutines at once.
type Metrics interface {
	// SessionOpened is called when a client connection is served.
	SessionOpened()
	// SessionClosed is called when it ends.
	SessionClosed()
	// Transaction is called once per transaction that ended with a verdict
	// of the rules: outcome is accept, reject, tempfail, discard or
	// quarantine. A refusal at connect, helo or authenticate counts as one
	// transaction, and so does a transaction whose recipients were all
	// refused.
	Transaction(outcome string)
}

// The outcomes Metrics.Transaction is given (package metrics's names).
const (
	outcomeAccept     = "accept"
	outcomeReject     = "reject"
	outcomeTempfail   = "tempfail"
	outcomeDiscard    = "discard"
	outcomeQuarantine = "quarantine"
)

// Options configure a Server.
type Options struct {
	// Config is the configuration, as package config loads it (every
	// default filled in): [server] (domain, client_count_max,
	// message_size_limit), [server.interfaces], [server.tls], [server.smtp]
	// and app.dirpath. Required.
	Config *config.Config
	// Rules returns the current rule set. Each connection calls it once,
	// when it is accepted, and keeps the result until it closes. Required.
	Rules func() *policy.Rules
	// Queue takes the accepted messages. Required.
	Queue Queue
	// Observer is told every directive's outcome and every stage's verdict
	// (may be nil).
	Observer policy.Observer
	// Logger receives one line per transaction (outcome, deciding stage and
	// rule, queue id), the rules' log() calls under the name "script", and
	// faults. Credentials are never logged. Nil discards everything.
	Logger hclog.Logger
	// Metrics counts sessions and transactions (may be nil).
	Metrics Metrics
	// OnError says what a script error answers (SEMANTICS §8).
	OnError policy.OnError
	// Deadline bounds each stage's run (0: only the operation budget).
	Deadline time.Duration
	// TLS is the server's TLS configuration. Nil: it is built from
	// [server.tls] (its certificate and private_key are read by New), and
	// there is no TLS when security_level is None.
	TLS *tls.Config
}

// Kind is what a listener is for; it decides how TLS starts.
type Kind uint8

// The listener kinds of [server.interfaces].
const (
	// Relay is addr: mail from other servers (port 25). STARTTLS is
	// offered when TLS is configured.
	Relay Kind = iota
	// Submission is addr_submission: mail from users (port 587), with
	// STARTTLS when TLS is configured.
	Submission
	// Submissions is addr_submissions: mail from users over implicit TLS
	// (port 465). It needs TLS.
	Submissions
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case Relay:
		return "relay"
	case Submission:
		return "submission"
	case Submissions:
		return "submissions"
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Server is the standalone SMTP server. Create it with New.
type Server struct {
	opts    Options
	cfg     *config.Config
	log     hclog.Logger
	replies *replies
	tls     *tls.Config // nil: no TLS
	encrypt bool        // security_level Encrypt: no mail transaction before TLS
	mechs   []string    // the SASL mechanisms offered; nil: no AUTH
	runOpts policy.RunOptions

	// ctx is the parent of every rule run and queue call; it is cancelled
	// when Shutdown stops waiting for the connections.
	ctx    context.Context
	cancel context.CancelFunc

	closing   atomic.Bool // Shutdown was called
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	wg        sync.WaitGroup // goroutines serving a connection
}

// supportedMech reports whether the server implements a SASL mechanism:
// PLAIN and LOGIN, which both hand the authenticate stage a user name and a
// password.
func supportedMech(m string) bool { return m == "PLAIN" || m == "LOGIN" }

// New returns a server for opts. It reads the TLS certificate and key when
// Options.TLS is nil and [server.tls] configures TLS.
func New(opts Options) (*Server, error) {
	if opts.Config == nil {
		return nil, errors.New("smtpd: Options.Config is nil")
	}
	if opts.Rules == nil {
		return nil, errors.New("smtpd: Options.Rules is nil")
	}
	if opts.Queue == nil {
		return nil, errors.New("smtpd: Options.Queue is nil")
	}
	cfg := opts.Config
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	tlsCfg := opts.TLS
	if tlsCfg == nil {
		var err error
		if tlsCfg, err = buildTLS(cfg); err != nil {
			return nil, err
		}
	} else {
		tlsCfg = tlsCfg.Clone()
	}
	encrypt := cfg.Server.TLS.SecurityLevel == config.SecurityEncrypt
	if encrypt && tlsCfg == nil {
		return nil, fmt.Errorf("smtpd: security_level is Encrypt: %w", errNoTLS)
	}
	s := &Server{
		opts: opts, cfg: cfg, log: log, tls: tlsCfg, encrypt: encrypt,
		replies:   newReplies(cfg.Server.Domain, cfg.Server.SMTP.Codes),
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
	}
	if a := cfg.Server.SMTP.Auth; a != nil {
		for _, m := range a.Mechanisms {
			if supportedMech(m) {
				s.mechs = append(s.mechs, m)
			}
		}
		switch {
		case len(s.mechs) == 0:
			log.Warn("AUTH is not offered: none of the configured SASL mechanisms is supported",
				"configured", a.Mechanisms, "supported", []string{"PLAIN", "LOGIN"})
		case len(s.mechs) < len(a.Mechanisms):
			log.Info("some configured SASL mechanisms are not supported and are not offered",
				"configured", a.Mechanisms, "offered", s.mechs)
		}
	}
	s.runOpts = policy.RunOptions{
		Observer: opts.Observer,
		Log:      logging.ScriptLog(log.Named("script")),
		AppDir:   cfg.App.Dirpath,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// ErrNoListener is returned by Serve when the configuration names no
// address to listen on.
var ErrNoListener = errors.New("smtpd: no listener configured in [server.interfaces]")

// Serve listens on every address of [server.interfaces]: addr as Relay,
// addr_submission as Submission and addr_submissions as Submissions (left
// out, with a warning, when there is no TLS). The addresses are the
// configuration's: package config defaults them to loopback. Serve returns
// nil once ctx is done or Shutdown is called, having stopped accepting
// (the connections in progress are Shutdown's business), or the first
// error of a listener, after closing the others.
func (s *Server) Serve(ctx context.Context) error {
	type endpoint struct {
		addr netip.AddrPort
		kind Kind
	}
	var eps []endpoint
	in := &s.cfg.Server.Interfaces
	for _, a := range in.Addr {
		eps = append(eps, endpoint{a, Relay})
	}
	for _, a := range in.AddrSubmission {
		eps = append(eps, endpoint{a, Submission})
	}
	for _, a := range in.AddrSubmissions {
		if s.tls == nil {
			s.log.Warn("not listening for submissions (implicit TLS): no TLS configured", "addr", a.String())
			continue
		}
		eps = append(eps, endpoint{a, Submissions})
	}
	if len(eps) == 0 {
		return ErrNoListener
	}
	var lc net.ListenConfig
	lns := make([]net.Listener, 0, len(eps))
	for _, ep := range eps {
		ln, err := lc.Listen(ctx, "tcp", ep.addr.String())
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("smtpd: listening on %s (%s): %w", ep.addr, ep.kind, err)
		}
		lns = append(lns, ln)
	}
	closeAll := func() {
		for _, ln := range lns {
			s.closeListener(ln)
		}
	}
	for _, ln := range lns {
		if !s.track(ln) {
			closeAll()
			return nil
		}
	}
	errc := make(chan error, len(lns))
	for i, ln := range lns {
		s.log.Info("listening", "addr", ln.Addr().String(), "kind", eps[i].kind.String())
		go func() { errc <- s.serve(ln, eps[i].kind) }()
	}
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()
	var first error
	for range lns {
		if err := <-errc; err != nil && first == nil {
			first = err
			closeAll()
		}
	}
	return first
}

// ServeListener serves SMTP of kind on ln until Shutdown is called or ln
// fails; ln is closed when it returns. It returns nil after Shutdown, and
// an error when kind is Submissions without TLS. Tests use it to serve a
// listener of their own.
func (s *Server) ServeListener(ln net.Listener, kind Kind) error {
	switch {
	case kind == Submissions && s.tls == nil:
		ln.Close()
		return fmt.Errorf("smtpd: serving submissions on %s: %w", ln.Addr(), errNoTLS)
	case kind > Submissions:
		ln.Close()
		return fmt.Errorf("smtpd: serving %s: unknown listener kind %d", ln.Addr(), kind)
	}
	if !s.track(ln) {
		return nil
	}
	return s.serve(ln, kind)
}

// track registers ln as served, so that Shutdown and closeListener close
// it; false (and ln closed) when the server is shutting down.
func (s *Server) track(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		ln.Close()
		return false
	}
	s.listeners[ln] = struct{}{}
	return true
}

// serve accepts connections on ln, which track registered. Closed by
// closeListener or Shutdown, it returns nil.
func (s *Server) serve(ln net.Listener, kind Kind) error {
	defer s.closeListener(ln)
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || !s.isListening(ln) {
				return nil
			}
			if wait, ok := sockets.AcceptRetry(err, backoff); ok {
				backoff = wait
				s.log.Warn("accepting an SMTP connection failed; retrying", "error", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("smtpd: accepting connections on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		s.accept(c, kind)
	}
}

// closeListener stops ln accepting; its serve loop then returns nil.
func (s *Server) closeListener(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
	ln.Close()
}

// isListening reports whether ln is still served (not closed on purpose).
func (s *Server) isListening(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.listeners[ln]
	return ok
}

// accept starts serving an accepted connection on its own goroutine, or
// turns it away when client_count_max clients are served already.
func (s *Server) accept(nc net.Conn, kind Kind) {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		nc.Close()
		return
	}
	limit := s.cfg.Server.ClientCountMax
	full := limit >= 0 && len(s.conns) >= limit
	var c *conn
	if !full {
		c = newConn(s, nc, kind)
		s.conns[c] = struct{}{}
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		if full {
			s.turnAway(nc, kind)
			return
		}
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
		c.serve()
	}()
}

// turnAway answers a connection over client_count_max with
// ConnectionMaxReached and closes it.
func (s *Server) turnAway(nc net.Conn, kind Kind) {
	defer nc.Close()
	s.log.Warn("too many clients; connection refused", "client", nc.RemoteAddr().String(), "client_count_max", s.cfg.Server.ClientCountMax)
	w := nc
	if kind == Submissions {
		tc := tls.Server(nc, s.tls)
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Server.TLS.HandshakeTimeout)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			return
		}
		w = tc
	}
	w.SetWriteDeadline(time.Now().Add(5 * time.Second))
	w.Write(appendReply(nil, s.replies.get(rConnectionMaxReached)))
}

// Shutdown stops accepting connections and ends the sessions in progress as
// they come back to waiting for a command: they are told "421 <domain>
// Service not available, closing transmission channel", so a message being
// transferred or queued is finished first. When ctx ends before every
// session has, Shutdown closes the connections left, cancels the rules and
// queue calls still running, waits for them and returns ctx's error. Serve
// and ServeListener return nil after Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.listeners {
		delete(s.listeners, ln)
		ln.Close()
	}
	for c := range s.conns {
		c.interruptIdle()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
	}
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.closeNow()
	}
	s.mu.Unlock()
	<-done
	return fmt.Errorf("smtpd: shutdown: %w", ctx.Err())
}
