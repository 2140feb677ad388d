package delivery

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/policy"
)

// parseTarget turns a forward target into the host:port to dial: host,
// host:port, smtp://host[:port][/], [ipv6]:port, [ipv6] or a bare IPv6
// address; the port is 25 unless given. A host name in brackets, as in
// Postfix's relayhost, is accepted: no MX lookup is done either way. The
// host is lower-cased, so that
// spellings of one target share a session. Invalid targets fail
// permanently: retrying would not fix the rule.
func parseTarget(target string) (string, error) {
	bad := func(why string) error {
		return permanent(fmt.Errorf("invalid forward target %q: %s", target, why))
	}
	s := strings.TrimSpace(target)
	if len(s) >= 7 && strings.EqualFold(s[:7], "smtp://") {
		s = strings.TrimSuffix(s[7:], "/")
		if strings.ContainsAny(s, "/?#@") {
			return "", bad("an smtp:// target has only a host and a port")
		}
	} else if i := strings.Index(s, "://"); i >= 0 {
		return "", bad("unsupported scheme " + s[:i])
	}
	host, port := s, "25"
	if ip, err := netip.ParseAddr(s); err == nil && ip.Is6() {
		// a bare IPv6 address: host as is
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	} else if strings.Contains(s, ":") {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			return "", bad("not host:port")
		}
		host, port = h, p
	}
	if host == "" {
		return "", bad("no host")
	}
	if strings.Contains(host, ":") {
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Is6() {
			return "", bad("invalid IPv6 address")
		}
	} else {
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
				return "", bad(fmt.Sprintf("character %q in host (international names are written as xn-- A-labels)", c))
			}
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", bad("port must be a number from 1 to 65535")
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

// forward sends msg in one SMTP session to addr (host:port), for rcpts,
// and returns one error per recipient: nil for those the target accepted
// at the end of DATA. The session ends at ForwardTimeout or when ctx does.
func (a *Agent) forward(ctx context.Context, addr string, from policy.MailAddr, rcpts []policy.MailAddr, msg []byte) []error {
	errs := make([]error, len(rcpts))
	failAll := func(idx []int, err error) []error {
		for _, i := range idx {
			errs[i] = err
		}
		return errs
	}
	pending := make([]int, 0, len(rcpts)) // recipients still to send
	for i, r := range rcpts {
		switch {
		case r.Null:
			errs[i] = permanent(errors.New("cannot forward to the null address"))
		case hasControl(r.Local) || hasControl(r.Domain):
			errs[i] = permanent(fmt.Errorf("recipient %q contains control characters", r.String()))
		default:
			pending = append(pending, i)
		}
	}
	if len(pending) == 0 {
		return errs
	}

	ctx, cancel := context.WithTimeout(ctx, a.opts.ForwardTimeout)
	defer cancel()
	c, err := a.dial(ctx, addr, true)
	var te *tlsError
	if errors.As(err, &te) && a.opts.TLSConfig == nil {
		// Opportunistic TLS failed: the session cannot go on in plain
		// text, a new one can.
		c, err = a.dial(ctx, addr, false)
		if err != nil {
			err = fmt.Errorf("%w (after %v)", err, te)
		}
	}
	if err != nil {
		return failAll(pending, err)
	}
	defer c.Close()

	opts := &smtp.MailOptions{Size: int64(len(msg))}
	if utf8, _ := c.Extension("SMTPUTF8"); utf8 {
		opts.UTF8 = !isASCII(from.String()) || !allRcptsASCII(rcpts, pending)
	} else {
		noUTF8 := permanent(errors.New("non-ASCII address and the target does not offer SMTPUTF8"))
		if !isASCII(from.String()) {
			return failAll(pending, noUTF8)
		}
		ascii := pending[:0]
		for _, i := range pending {
			if isASCII(rcpts[i].String()) {
				ascii = append(ascii, i)
			} else {
				errs[i] = noUTF8
			}
		}
		if pending = ascii; len(pending) == 0 {
			c.Quit()
			return errs
		}
	}
	if err := c.Mail(from.String(), opts); err != nil {
		return failAll(pending, sessionErr(ctx, "MAIL FROM", err))
	}
	accepted := make([]int, 0, len(pending))
	for n, i := range pending {
		if err := c.Rcpt(rcpts[i].String(), nil); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				errs[i] = fmt.Errorf("RCPT TO: %w", err)
				continue
			}
			// The session is broken: this recipient, the ones after
			// it and the ones accepted so far all fail.
			err = sessionErr(ctx, "RCPT TO", err)
			failAll(pending[n:], err)
			return failAll(accepted, err)
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		c.Quit()
		return errs
	}
	w, err := c.Data()
	if err != nil {
		return failAll(accepted, sessionErr(ctx, "DATA", err))
	}
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return failAll(accepted, sessionErr(ctx, "DATA", err))
	}
	if err := w.Close(); err != nil {
		return failAll(accepted, sessionErr(ctx, "end of DATA", err))
	}
	// The copies are delivered; a failing QUIT changes nothing.
	c.Quit()
	return errs
}

// dial connects to addr and says EHLO, with STARTTLS in between when the
// target offers it and tryTLS is set; a failed TLS handshake is a
// *tlsError. The connection is bound to ctx: its deadline is every I/O
// deadline's upper bound, and cancelling ctx closes it.
//
// go-smtp's client cannot name itself in the EHLO before STARTTLS (it says
// "EHLO localhost", by design: see emersion/go-smtp#297), and some servers
// refuse that; so the exchange up to the TLS handshake is done here, and
// the client is handed the connection with the server's greeting replayed
// in front of it. It then says EHLO Hostname again, over TLS or not, as
// RFC 3207 requires after STARTTLS and RFC 5321 allows otherwise.
func (a *Agent) dial(ctx context.Context, addr string, tryTLS bool) (*smtp.Client, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, sessionErr(ctx, "connect", err)
	}
	deadline, _ := ctx.Deadline()
	conn := &deadlineConn{Conn: raw, limit: deadline}
	conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	var cur net.Conn = conn
	c, err := func() (*smtp.Client, error) {
		br := bufio.NewReader(conn)
		tp := textproto.NewReader(br)
		code, text, err := tp.ReadResponse(220)
		if err != nil {
			return nil, sessionErr(ctx, "greeting", replyErr(err))
		}
		greeting := replyBytes(code, text)

		starttls := false
		if _, err := fmt.Fprintf(conn, "EHLO %s\r\n", a.opts.Hostname); err != nil {
			return nil, sessionErr(ctx, "EHLO", err)
		}
		_, text, err = tp.ReadResponse(250)
		var pe *textproto.Error
		switch {
		case err == nil:
			for _, line := range strings.Split(text, "\n")[1:] {
				if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(f[0], "STARTTLS") {
					starttls = true
				}
			}
		case errors.As(err, &pe) && pe.Code/100 == 5:
			// No ESMTP: the client falls back to HELO.
		default:
			return nil, sessionErr(ctx, "EHLO", replyErr(err))
		}

		if starttls && tryTLS {
			if _, err := fmt.Fprintf(conn, "STARTTLS\r\n"); err != nil {
				return nil, sessionErr(ctx, "STARTTLS", err)
			}
			_, _, err := tp.ReadResponse(220)
			switch {
			case err == nil:
				if br.Buffered() > 0 {
					// Anything sent before the handshake could be an
					// injected command (CVE-2011-0411).
					return nil, errors.New("STARTTLS: server sent data before the TLS handshake")
				}
				tc := tls.Client(conn, a.tlsConfig(addr))
				if err := tc.HandshakeContext(ctx); err != nil {
					return nil, &tlsError{sessionErr(ctx, "TLS handshake", err)}
				}
				cur = tc
			case errors.As(err, &pe):
				// STARTTLS refused (454): go on in plain text.
			default:
				return nil, sessionErr(ctx, "STARTTLS", err)
			}
		}
		if cur == conn {
			rest, _ := br.Peek(br.Buffered())
			greeting = append(greeting, rest...)
		}
		c := smtp.NewClient(&prefixConn{Conn: cur, prefix: greeting})
		c.CommandTimeout = a.opts.ForwardTimeout
		c.SubmissionTimeout = a.opts.ForwardTimeout
		if err := c.Hello(a.opts.Hostname); err != nil {
			c.Close()
			return nil, sessionErr(ctx, "EHLO", err)
		}
		return c, nil
	}()
	if err != nil {
		stop()
		cur.Close()
		return nil, err
	}
	return c, nil
}

// tlsConfig returns the STARTTLS configuration for a target (host:port).
func (a *Agent) tlsConfig(addr string) *tls.Config {
	host, _, _ := net.SplitHostPort(addr)
	if a.opts.TLSConfig == nil {
		// Opportunistic (see Options.TLSConfig): unauthenticated.
		return &tls.Config{ServerName: host, InsecureSkipVerify: true}
	}
	c := a.opts.TLSConfig.Clone()
	if c.ServerName == "" {
		c.ServerName = host
	}
	return c
}

// tlsError is a failed TLS handshake.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// sessionErr names the step of the session that failed; when the session's
// context has ended, the context's error is the cause (the connection was
// closed under the step).
func sessionErr(ctx context.Context, step string, err error) error {
	var se *smtp.SMTPError
	if !errors.As(err, &se) && ctx.Err() != nil {
		return fmt.Errorf("%s: %w (%v)", step, context.Cause(ctx), err)
	}
	return fmt.Errorf("%s: %w", step, err)
}

// replyErr turns an unexpected reply read by textproto into the
// *smtp.SMTPError the go-smtp client would have returned.
func replyErr(err error) error {
	var pe *textproto.Error
	if errors.As(err, &pe) {
		return &smtp.SMTPError{Code: pe.Code, Message: pe.Msg}
	}
	return err
}

// replyBytes renders a (possibly multi-line) reply as it went on the wire.
func replyBytes(code int, text string) []byte {
	var b []byte
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		sep := '-'
		if i == len(lines)-1 {
			sep = ' '
		}
		b = fmt.Appendf(b, "%03d%c%s\r\n", code, sep, l)
	}
	return b
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allRcptsASCII(rcpts []policy.MailAddr, idx []int) bool {
	for _, i := range idx {
		if !isASCII(rcpts[i].String()) {
			return false
		}
	}
	return true
}

// deadlineConn keeps every deadline set on a connection at or before
// limit: go-smtp sets its own per-command deadlines, which must not
// outlive the session's.
type deadlineConn struct {
	net.Conn
	limit time.Time
}

func (c *deadlineConn) clamp(t time.Time) time.Time {
	if t.IsZero() || t.After(c.limit) {
		return c.limit
	}
	return t
}

// SetDeadline sets the read and write deadlines, at most the limit.
func (c *deadlineConn) SetDeadline(t time.Time) error { return c.Conn.SetDeadline(c.clamp(t)) }

// SetReadDeadline sets the read deadline, at most the limit.
func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.clamp(t))
}

// SetWriteDeadline sets the write deadline, at most the limit.
func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.clamp(t))
}

// prefixConn is a connection whose first reads return prefix.
type prefixConn struct {
	net.Conn
	prefix []byte
}

// Read reads the rest of the prefix, then from the connection.
func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
