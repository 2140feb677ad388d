package delegate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/policy"
)

// Client sends delegated messages to filters. Its zero value is usable.
type Client struct {
	// Hostname is the name the client gives in EHLO; "" uses the
	// machine's host name.
	Hostname string
}

// Send sends msg with the envelope from and rcpts to the filter of
// delegation d (its Service.Address) in one SMTP session, using a Client
// with the machine's host name.
func Send(ctx context.Context, d *policy.Delegation, from policy.MailAddr, rcpts []policy.MailAddr, msg []byte) error {
	var c Client
	return c.Send(ctx, d, from, rcpts, msg)
}

// Send sends msg with the envelope from and rcpts to the filter of
// delegation d (its Service.Address) in one SMTP session, and returns when
// the filter has answered the end of the data. msg is the message as
// policy.Transaction.DelegatedMessage renders it, X-VSMTP-DELEGATION
// first; a filter that proxies the session (clamsmtpd) sends the message
// back before it answers, so the receiver must be waiting for it already.
//
// The session ends when ctx does, and at the latest after the service's
// timeout. Errors: a failed connection wraps ErrUnreachable; a refusal by
// the filter (of the sender, of any recipient, or of the message) wraps
// its *smtp.SMTPError; a passed timeout wraps ErrTimeout. Result names
// them.
func (c *Client) Send(ctx context.Context, d *policy.Delegation, from policy.MailAddr, rcpts []policy.MailAddr, msg []byte) error {
	if d == nil || d.Service == nil {
		return errors.New("delegate: the delegation names no smtp service")
	}
	if len(rcpts) == 0 {
		return fmt.Errorf("delegate %q: the envelope has no recipient", d.Directive)
	}
	svc := d.Service
	if svc.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, svc.Timeout, ErrTimeout)
		defer cancel()
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", svc.Address)
	if err != nil {
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, svc.Address, sessionErr(ctx, err))
	}
	// Cancelling ctx closes the connection under whatever step waits.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	cl := smtp.NewClient(conn)
	defer cl.Close()
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		cl.CommandTimeout, cl.SubmissionTimeout = left, left
	}
	step := func(what string, err error) error {
		return fmt.Errorf("filter %s: %s: %w", svc.Address, what, sessionErr(ctx, err))
	}
	if err := cl.Hello(c.hostname()); err != nil {
		return step("EHLO", err)
	}
	opts := &smtp.MailOptions{Size: int64(len(msg))}
	if !ascii(from.String()) || !allASCII(rcpts) {
		opts.UTF8 = true // go-smtp refuses when the filter does not offer SMTPUTF8
	}
	if err := cl.Mail(from.String(), opts); err != nil {
		return step("MAIL FROM", err)
	}
	for _, r := range rcpts {
		if err := cl.Rcpt(r.String(), nil); err != nil {
			return step("RCPT TO <"+r.String()+">", err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return step("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return step("DATA", err)
	}
	if err := w.Close(); err != nil {
		return step("end of DATA", err)
	}
	cl.Quit() // the message is handed over; a failing QUIT changes nothing
	return nil
}

// hostname returns the EHLO name.
func (c *Client) hostname() string {
	if c.Hostname != "" {
		return c.Hostname
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// sessionErr returns err, with the context's cause in front when the
// context ended (the connection was closed under the step, or the dial
// was cut).
func sessionErr(ctx context.Context, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) || ctx.Err() == nil {
		return err
	}
	return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(as []policy.MailAddr) bool {
	for _, a := range as {
		if !ascii(a.String()) {
			return false
		}
	}
	return true
}
