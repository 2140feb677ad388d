package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/policy/object"
)

// maxLine bounds a command line, CRLF excluded: RFC 4954's limit for an
// AUTH line, which is more than any other command needs.
const maxLine = 12288

// errLineTooLong is a command line longer than maxLine (its rest was read
// and dropped).
var errLineTooLong = errors.New("smtpd: line too long")

// errShuttingDown stops a session that would wait for a command while the
// server shuts down.
var errShuttingDown = errors.New("smtpd: server is shutting down")

// conn is one client connection: the SMTP dialogue and the policy.Session
// it drives. Everything but interruptIdle and closeNow runs on the
// connection's goroutine.
type conn struct {
	srv  *Server
	kind Kind
	raw  net.Conn // the accepted connection
	log  hclog.Logger

	mu   sync.Mutex // guards nc and idle against Shutdown
	nc   net.Conn   // raw, or the TLS connection over it
	idle bool       // waiting for the client's next command

	r *bufio.Reader
	w *bufio.Writer

	client  netip.AddrPort
	ps      *policy.Session
	secured bool // TLS is active
	helo    bool // HELO or EHLO was accepted (since the last STARTTLS)
	esmtp   bool // and it was EHLO
	authed  bool
	// authFails counts failed and cancelled AUTH attempts.
	authFails int
	// refusedAtConnect: the connect stage refused without ending the
	// session; only QUIT, NOOP, RSET and HELP are answered (RFC 5321 §3.1).
	refusedAtConnect bool
	errCount         int  // replies of 400 and more sent
	quit             bool // end the session once the replies are sent
	tx               txState
}

// txState is the mail transaction in progress, as the dialogue sees it.
type txState struct {
	active  bool // MAIL was accepted
	from    policy.MailAddr
	size    int64            // the message's size declared by MAIL FROM's SIZE, 0 if none
	rcpts   int              // recipients the client gave that were accepted
	refusal *policy.Decision // the last refused recipient
}

func newConn(s *Server, nc net.Conn, kind Kind) *conn {
	c := &conn{srv: s, kind: kind, raw: nc, nc: nc}
	c.client = addrPort(nc.RemoteAddr())
	c.log = s.log.With("client", c.client.Addr().String(), "listener", kind.String())
	c.r = bufio.NewReader(nc)
	c.w = bufio.NewWriter(nc)
	return c
}

// addrPort returns a TCP address as a netip.AddrPort (IPv4 unmapped).
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// serve runs the session: TLS first for Submissions, the connect stage and
// the greeting, then commands until QUIT, a deny, an error or shutdown.
func (c *conn) serve() {
	if m := c.srv.opts.Metrics; m != nil {
		m.SessionOpened()
		defer m.SessionClosed()
	}
	defer c.close()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic serving an SMTP connection", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			c.reply(shutdownReply(c.srv.cfg.Server.Domain))
		}
	}()
	if c.kind == Submissions {
		if err := c.handshake(); err != nil {
			c.log.Debug("TLS handshake failed", "error", err)
			return
		}
	}
	rules := c.srv.opts.Rules()
	if rules == nil {
		c.log.Error("no rule set is loaded; closing the connection")
		c.reply(shutdownReply(c.srv.cfg.Server.Domain))
		return
	}
	c.ps = policy.NewSession(rules, policy.SessionOptions{
		OnError:    c.srv.opts.OnError,
		Deadline:   c.srv.opts.Deadline,
		RunOptions: c.srv.runOpts,
	})
	c.connect()
	for !c.quit {
		line, err := c.readCommand()
		switch {
		case errors.Is(err, errLineTooLong):
			c.reply(c.srv.replies.get(rUnrecognizedCommand))
		case err != nil:
			c.readFailed(err)
		default:
			c.dispatch(line)
		}
	}
}

// connect runs the connect stage and greets the client, or refuses it.
func (c *conn) connect() {
	server := addrPort(c.raw.LocalAddr())
	d := c.ps.Connect(c.srv.ctx, c.client, server, c.srv.cfg.Server.Domain, c.secured)
	if d.Action == policy.ActionRefuse {
		c.refuse(policy.Connect, d)
		c.refusedAtConnect = !d.EndSession
		return
	}
	if r, ok := c.custom(d); ok {
		c.reply(r)
		return
	}
	c.reply(c.srv.replies.get(rGreetings))
}

// handshake starts implicit TLS (Submissions).
func (c *conn) handshake() error {
	tc := tls.Server(c.raw, c.srv.tls)
	ctx, cancel := context.WithTimeout(c.srv.ctx, c.srv.cfg.Server.TLS.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("smtpd: TLS handshake: %w", err)
	}
	c.useTLS(tc)
	return nil
}

// useTLS makes tc the connection: whatever was read ahead in clear text is
// dropped, so that commands a client (or a man in the middle) sent after
// STARTTLS in the same packet never run as if they came over TLS.
func (c *conn) useTLS(tc *tls.Conn) {
	c.mu.Lock()
	c.nc = tc
	c.mu.Unlock()
	c.r.Reset(tc)
	c.w.Reset(tc)
	c.secured = true
}

// timeout is how long the client may take to send its next command
// ([server.smtp.timeout_client]), by where the dialogue is.
func (c *conn) timeout() time.Duration {
	t := &c.srv.cfg.Server.SMTP.TimeoutClient
	switch {
	case !c.helo:
		return t.Connect
	case c.tx.rcpts > 0:
		return t.RcptTo
	case c.tx.active:
		return t.MailFrom
	}
	return t.Helo
}

// readCommand reads the client's next line within timeout(), sending the
// replies written so far first unless more commands are already there
// (RFC 2920: pipelined replies may be sent in groups).
func (c *conn) readCommand() (string, error) {
	if c.r.Buffered() == 0 {
		if err := c.flush(); err != nil {
			return "", err
		}
	}
	if !c.beginWait(c.timeout()) {
		return "", errShuttingDown
	}
	defer c.endWait()
	return c.readLine()
}

// beginWait marks the connection as waiting for the client, so that
// Shutdown can interrupt it; false when the server is shutting down.
func (c *conn) beginWait(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv.closing.Load() {
		return false
	}
	c.nc.SetDeadline(time.Now().Add(d))
	c.idle = true
	return true
}

func (c *conn) endWait() {
	c.mu.Lock()
	c.idle = false
	c.mu.Unlock()
}

// interruptIdle makes a connection waiting for a command give up at once
// (Shutdown); a busy one notices at its next wait.
func (c *conn) interruptIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idle {
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// closeNow closes the connection under whatever is using it (Shutdown
// giving up).
func (c *conn) closeNow() {
	c.raw.Close()
}

// readLine reads a line of at most maxLine bytes and returns it without
// its line end (CRLF, or a bare LF). A longer line is read to its end and
// dropped with errLineTooLong.
func (c *conn) readLine() (string, error) {
	var line []byte
	long := false
	for {
		chunk, err := c.r.ReadSlice('\n')
		if !long {
			if len(line)+len(chunk) > maxLine+2 {
				long, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	if long {
		return "", errLineTooLong
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return string(line), nil
}

// readFailed ends the session after a failed read: a timeout is answered
// (Timeout, or 421 when the server is shutting down); a closed connection
// is not.
func (c *conn) readFailed(err error) {
	c.quit = true
	var ne net.Error
	switch {
	case errors.Is(err, errShuttingDown) || c.srv.closing.Load() && errors.As(err, &ne) && ne.Timeout():
		c.reply(shutdownReply(c.srv.cfg.Server.Domain))
	case errors.As(err, &ne) && ne.Timeout():
		c.log.Debug("client timed out", "after", c.timeout().String())
		c.reply(c.srv.replies.get(rTimeout))
	default:
		c.log.Debug("connection ended", "error", err)
	}
}

// reply writes r (sent at the next flush). A reply of 400 and more is a
// client error ([server.smtp.error]): from soft_count errors on, each is
// delayed; at hard_count, TooManyError follows and the session ends.
func (c *conn) reply(r object.Code) {
	c.w.Write(appendReply(nil, r))
	if r.Code < 400 {
		return
	}
	c.errCount++
	e := &c.srv.cfg.Server.SMTP.Error
	if e.HardCount >= 0 && c.errCount >= e.HardCount {
		c.log.Info("too many errors; closing the connection", "errors", c.errCount)
		c.w.Write(appendReply(nil, c.srv.replies.get(rTooManyError)))
		c.quit = true
		return
	}
	if e.SoftCount >= 0 && c.errCount >= e.SoftCount && e.Delay > 0 {
		if c.flush() != nil {
			return
		}
		t := time.NewTimer(e.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.srv.ctx.Done():
		}
	}
}

// flush sends the replies written so far; a failure ends the session.
func (c *conn) flush() error {
	if c.w.Buffered() == 0 {
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.timeout()))
	if err := c.w.Flush(); err != nil {
		c.quit = true
		return fmt.Errorf("smtpd: sending a reply: %w", err)
	}
	return nil
}

// close ends the session: the transaction left is accounted for, the
// replies written are sent, the connection is closed.
func (c *conn) close() {
	if c.ps != nil {
		c.endTransaction()
	}
	if err := c.flush(); err != nil {
		c.log.Debug("the last replies were not sent", "error", err)
	}
	c.mu.Lock()
	nc := c.nc
	c.mu.Unlock()
	nc.SetDeadline(time.Now().Add(time.Second)) // a TLS close_notify must not block
	nc.Close()
}
