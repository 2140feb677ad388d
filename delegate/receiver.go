package delegate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/policy"
)

// DefaultMaxMessageBytes is the largest message a Receiver takes back
// unless told otherwise: well above the MTAs' usual limits (Postfix's
// message_size_limit is 10 MB by default), since the message was accepted
// once already.
const DefaultMaxMessageBytes = 64 << 20

// defaultIdle bounds each command of a filter's session on a Receiver.
const defaultIdle = 5 * time.Minute

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	// Hostname is the name in the greeting; "" uses the machine's name.
	Hostname string
	// MaxMessageBytes is the largest message taken (0:
	// DefaultMaxMessageBytes); a larger one is refused with 552 5.3.4.
	MaxMessageBytes int64
	// Clients are the networks filters may connect from; empty: loopback
	// only (127.0.0.0/8 and ::1). Others are refused at once (554 5.7.1).
	Clients []netip.Prefix
	// Logger receives one line per message taken or refused (nil: none).
	Logger hclog.Logger
}

// Receiver is an SMTP server on a delegation receiver address: filters
// send delegated messages back to it, and it hands each to its Sink, or
// refuses it. Create one with Listen.
type Receiver struct {
	addr   string
	sink   Sink
	opts   ReceiverOptions
	log    hclog.Logger
	srv    *smtp.Server
	ln     net.Listener
	served chan struct{} // closed when Serve has returned
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

// Listen starts a Receiver on addr (host:port, TCP) that hands the
// messages coming back to sink.
func Listen(addr string, sink Sink, opts ReceiverOptions) (*Receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("delegation receiver: %w", err)
	}
	return Serve(addr, ln, sink, opts), nil
}

// Serve starts a Receiver on an open listener; addr is the receiver
// address it stands for (the service's receiver, for logs). The Receiver
// owns ln from now on.
func Serve(addr string, ln net.Listener, sink Sink, opts ReceiverOptions) *Receiver {
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if len(opts.Clients) == 0 {
		opts.Clients = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Receiver{addr: addr, sink: sink, opts: opts, log: log, served: make(chan struct{}), ctx: ctx, cancel: cancel}
	r.ln = &clientFilter{Listener: ln, allowed: r.allowed, log: log}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &receiverSession{r: r, client: c.Conn().RemoteAddr().String()}, nil
	}))
	srv.Domain = (&Client{Hostname: opts.Hostname}).hostname()
	srv.MaxMessageBytes = opts.MaxMessageBytes
	srv.MaxRecipients = 10000
	srv.ReadTimeout, srv.WriteTimeout = defaultIdle, defaultIdle
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = logAdapter{log}
	r.srv = srv
	go func() {
		defer close(r.served)
		if err := srv.Serve(r.ln); err != nil {
			log.Error("delegation receiver stopped", "receiver", addr, "error", err)
		}
	}()
	return r
}

// Addr returns the address the Receiver listens on.
func (r *Receiver) Addr() net.Addr { return r.ln.Addr() }

// Close stops taking connections and lets the sessions in progress end;
// when ctx ends first, it closes them. It returns ctx's error then.
func (r *Receiver) Close(ctx context.Context) error {
	var err error
	r.once.Do(func() {
		err = r.srv.Shutdown(ctx)
		if err != nil {
			r.srv.Close()
		}
		// Serve may not have registered the listener with go-smtp yet,
		// which then closes nothing.
		r.ln.Close()
		r.cancel()
		<-r.served
	})
	if err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return fmt.Errorf("delegation receiver %s: %w", r.addr, err)
	}
	return nil
}

// allowed reports whether a filter may connect from addr.
func (r *Receiver) allowed(addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range r.opts.Clients {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// receiverSession is one SMTP session of a filter on a Receiver.
type receiverSession struct {
	r      *Receiver
	client string
	from   policy.MailAddr
	rcpts  []policy.MailAddr
}

func (s *receiverSession) Reset() { s.from, s.rcpts = policy.MailAddr{}, nil }

func (s *receiverSession) Logout() error { return nil }

func (s *receiverSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from, s.rcpts = policy.ParseMailAddr(from), nil
	return nil
}

func (s *receiverSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, policy.ParseMailAddr(to))
	return nil
}

// Data reads the message and hands it to the Sink through Take.
func (s *receiverSession) Data(rd io.Reader) error {
	msg, err := io.ReadAll(rd)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			s.r.log.Warn("delegated message refused", "receiver", s.r.addr, "client", s.client, "error", err)
		}
		return err
	}
	err = Take(s.r.ctx, s.r.sink, s.r.addr, s.from, s.rcpts, msg)
	log := s.r.log
	switch {
	case err == nil:
		log.Debug("delegated message back", "receiver", s.r.addr, "client", s.client, "size", len(msg))
	case errors.Is(err, ErrEnded):
		log.Warn("delegated message came back after its delegation ended; dropped", "receiver", s.r.addr, "client", s.client, "error", err)
		return nil
	default:
		log.Warn("delegated message refused", "receiver", s.r.addr, "client", s.client, "error", err)
	}
	// go-smtp answers a returned *smtp.SMTPError itself, not one wrapped.
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	return err
}

// Take parses a message that came back to the receiver address receiver
// (the whole message text, as received after DATA) and hands it to sink.
// It returns nil when the sink took it, or an error wrapping the
// *smtp.SMTPError to answer the filter with: 550 5.7.1 without a
// well-formed X-VSMTP-DELEGATION header or for an unknown id, 451 4.3.0
// when the sink failed otherwise. An error wrapping ErrEnded means the
// message is to be taken (250) and dropped.
//
// A standalone SMTP server whose listener is also a receiver address (as
// vSMTP required) calls it for the messages that carry the delegation
// header, so that one listener serves both.
func Take(ctx context.Context, sink Sink, receiver string, from policy.MailAddr, rcpts []policy.MailAddr, msg []byte) error {
	headers, body := Parse(msg)
	m := Returned{From: from, Rcpts: rcpts, Headers: headers, Body: body, Receiver: receiver}
	found := false
	for _, h := range headers {
		if strings.EqualFold(h.Name, policy.DelegationHeader) {
			m.ID, m.Directive, found = policy.ParseDelegationHeader(h.Value)
			break
		}
	}
	if !found {
		return fmt.Errorf("%w: %w", ErrNoHeader, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: "Delegated messages only: no valid " + policy.DelegationHeader + " header"})
	}
	err := sink.Return(ctx, m)
	switch {
	case err == nil, errors.Is(err, ErrEnded):
		return err
	case errors.Is(err, ErrUnknownID):
		return fmt.Errorf("%w: %w", err, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: "Unknown delegation id"})
	}
	return fmt.Errorf("%w: %w", err, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Cannot take the delegated message now, try again later"})
}

// Parse splits a message into its header fields and its body. A field's
// value is the text after the colon without the one space that usually
// follows it, its folding kept with CRLF line ends. The header ends at the
// first empty line, which is not part of the body, or at the first line
// that is neither a field nor a continuation, which starts the body.
func Parse(msg []byte) ([]policy.Header, []byte) {
	var headers []policy.Header
	rest := msg
	for len(rest) > 0 {
		line, next := cutLine(rest)
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return headers, next // the empty line ends the header
		}
		if (line[0] == ' ' || line[0] == '\t') && len(headers) > 0 {
			h := &headers[len(headers)-1]
			h.Value += "\r\n" + string(bytes.TrimRight(line, "\r\n"))
			rest = next
			continue
		}
		name, value, ok := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(":"))
		if !ok || len(name) == 0 || !fieldName(name) {
			return headers, rest
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		headers = append(headers, policy.Header{Name: string(name), Value: string(value)})
		rest = next
	}
	return headers, nil
}

// cutLine returns the first line of b with its line end, and the rest.
func cutLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i+1], b[i+1:]
	}
	return b, nil
}

// fieldName reports whether b is a header field name (RFC 5322: printable
// ASCII but the colon, no space).
func fieldName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// clientFilter accepts the connections of allowed clients only; the others
// are told why and closed.
type clientFilter struct {
	net.Listener
	allowed func(net.Addr) bool
	log     hclog.Logger
}

// Accept returns the next connection from an allowed client.
func (l *clientFilter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.allowed(c.RemoteAddr()) {
			return c, nil
		}
		l.log.Warn("delegation receiver: connection refused", "client", c.RemoteAddr().String())
		go func() {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "554 5.7.1 Delegated messages only, from the filters' hosts\r\n")
			c.Close()
		}()
	}
}

// logAdapter is go-smtp's error logger on hclog.
type logAdapter struct{ log hclog.Logger }

func (a logAdapter) Printf(format string, v ...any) { a.log.Warn(fmt.Sprintf(format, v...)) }
func (a logAdapter) Println(v ...any)               { a.log.Warn(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }
