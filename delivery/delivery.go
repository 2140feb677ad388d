// Package delivery delivers the copies of a message that the rules chose to
// deliver themselves (SEMANTICS §5, §8): into a maildir, appended to an mbox
// file, or forwarded by SMTP to a host the rule named. It returns only when
// every copy is durable on disk (or accepted by the forward target) or has
// failed, and says for each failed recipient whether the failure is
// temporary or permanent, so that the front end can answer the MTA or the
// client without ever losing a copy it has acknowledged.
//
// The package knows mail storage formats and the client side of SMTP. It
// must not know the milter protocol, the SMTP server session, the vSL
// language or the configuration file: the front ends hand it a message, an
// envelope sender and the delivery choices the rules recorded, and turn
// its *Error into replies.
//
// Where a copy goes (see Options):
//
//	maildir   MaildirRoot/<domain>/<local>/{tmp,new,cur}
//	mbox      MboxRoot/<domain>/<local>
//	forward   the SMTP server at the rule's target: host, host:port,
//	          smtp://host[:port], [ipv6]:port or a bare IPv6 address; port 25
//	          by default; no MX lookup
//
// The domain is lower-cased and a trailing dot dropped. The domain and local
// part become one path element each: '%' is written %25, '/' %2F and a
// leading '.' %2E, so that no address can name a path outside the roots,
// and addresses share a mailbox only when they differ in nothing but the
// case or trailing dot of their domain. An address that is
// empty, holds a control character (NUL, CR, LF, ...) or whose element
// would exceed 255 bytes fails permanently.
//
// Local copies (maildir, mbox) are stored the Unix way, with LF line ends,
// and start with "Return-Path: <sender>" and "Delivered-To: rcpt" header
// fields. Forwarded copies are sent as given, with CRLF line ends, and
// nothing added: the MTA or the SMTP front end that received the message
// has stamped its Received field already.
//
// The roots themselves are never created: a missing root is a temporary
// failure, so that an unmounted mail volume does not fill the disk below
// its mount point. The directories below them are created with mode 0700,
// files with mode 0600, owned by the process.
package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vsl-milter/vsl-milter/policy"
)

// DefaultForwardTimeout is the time a forward session may take when
// Options.ForwardTimeout is zero.
const DefaultForwardTimeout = time.Minute

// maxParallel bounds the copies one Deliver call writes or forwards at once.
const maxParallel = 8

// Options come from the [delivery] config section.
type Options struct {
	// MaildirRoot is the absolute directory holding the maildirs, at
	// MaildirRoot/<domain>/<local>/{tmp,new,cur}; "" when maildir delivery
	// is not configured (a maildir copy then fails temporarily).
	MaildirRoot string
	// MboxRoot is the absolute directory holding the mbox files, at
	// MboxRoot/<domain>/<local>; "" when mbox delivery is not configured
	// (an mbox copy then fails temporarily).
	MboxRoot string
	// ForwardTimeout bounds one forward SMTP session, from the dial to the
	// reply to the end of DATA. Zero means DefaultForwardTimeout.
	ForwardTimeout time.Duration
	// Hostname is the name used in Maildir file names and in the EHLO of
	// forward sessions; the machine's host name when empty.
	Hostname string
	// TLSConfig is used for STARTTLS with forward targets. STARTTLS is
	// used whenever a target offers it.
	//
	// nil means opportunistic TLS as RFC 7435 and Postfix's
	// "smtp_tls_security_level = may" do it: the certificate is not
	// verified (encryption without authentication is still better than
	// plain text, and a verification failure would otherwise send the
	// message in clear), and if the handshake fails the message is sent
	// again over a new plain-text connection.
	//
	// A non-nil config is used as given, its ServerName defaulting to the
	// target's host; a handshake or verification failure is then a
	// temporary failure, never a silent fall-back to plain text. Either
	// way a target that does not offer STARTTLS gets the message in plain
	// text: this is no defence against an attacker who strips STARTTLS.
	TLSConfig *tls.Config
}

// Agent delivers copies of messages as Options say. It is safe for
// concurrent use by many goroutines; copies to one mbox are serialised
// with file locks, so several processes may share the roots too.
type Agent struct {
	opts    Options
	pid     int
	mdHost  string        // Hostname escaped for maildir file names
	counter atomic.Uint64 // the Q part of maildir file names

	// now is the clock (mbox From lines, maildir file names); tests fix it.
	now func() time.Time
	// hook, when set by tests, runs at the named points of a delivery
	// ("maildir-written", "mbox-written"); an error it returns fails the
	// copy there, as a failed write would.
	hook func(point, path string) error
}

// New checks opts and returns an Agent. It creates nothing: directories
// are made when the first copy needs them.
func New(opts Options) (*Agent, error) {
	for _, r := range []struct{ name, dir string }{{"maildir root", opts.MaildirRoot}, {"mbox root", opts.MboxRoot}} {
		if r.dir == "" {
			continue
		}
		if !filepath.IsAbs(r.dir) {
			return nil, fmt.Errorf("delivery: %s %q is not an absolute path", r.name, r.dir)
		}
	}
	opts.MaildirRoot = cleanRoot(opts.MaildirRoot)
	opts.MboxRoot = cleanRoot(opts.MboxRoot)
	switch {
	case opts.ForwardTimeout < 0:
		return nil, fmt.Errorf("delivery: negative forward timeout %v", opts.ForwardTimeout)
	case opts.ForwardTimeout == 0:
		opts.ForwardTimeout = DefaultForwardTimeout
	}
	if opts.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("delivery: no hostname given and the machine's is unknown: %w", err)
		}
		opts.Hostname = h
	}
	if strings.ContainsFunc(opts.Hostname, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("delivery: hostname %q contains spaces or control characters", opts.Hostname)
	}
	return &Agent{opts: opts, pid: os.Getpid(), mdHost: maildirHost(opts.Hostname), now: time.Now}, nil
}

func cleanRoot(dir string) string {
	if dir == "" {
		return ""
	}
	return filepath.Clean(dir)
}

// Deliver delivers msg (the full RFC 5322 message, CRLF line ends) to every
// recipient whose Transport is Maildir, Mbox or Forward; recipients left to
// the MTA (Deliver) are ignored. Recipients whose copies would land in the
// same mailbox, or go to the same target for the same address, get one
// copy between them (and share its fate). from is the envelope sender
// (Return-Path).
//
// Deliver returns when each copy is durable (fsynced, or accepted by the
// forward target after DATA) or has failed: nil when all were delivered,
// otherwise an *Error listing the failed recipients in the order of rcpts.
// Copies are written and forwarded concurrently; all recipients sharing a
// forward target go in one SMTP session. Cancelling ctx fails the copies
// not yet durable, temporarily; a copy being written when ctx is cancelled
// is finished.
func (a *Agent) Deliver(ctx context.Context, msg []byte, from policy.MailAddr, rcpts []policy.DeliveryChoice) error {
	failures := make([]*Failure, len(rcpts))
	fail := func(i int, dest string, err error) {
		failures[i] = &Failure{Rcpt: rcpts[i].Rcpt, Transport: rcpts[i].Transport, Dest: dest, Temporary: temporary(err), Err: err}
	}
	senderErr := checkSender(from)

	var (
		wg     sync.WaitGroup
		sem    = make(chan struct{}, maxParallel)
		local  *localMessage
		first  = map[string]int{} // a copy's destination → the first recipient with it
		dupOf  = map[int]int{}    // a recipient → the first with the same destination
		groups = map[string]*forwardGroup{}
		order  []*forwardGroup
	)
	run := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			f()
		}()
	}
	// once reports whether i is the first recipient whose copy goes to
	// dest, recording it as a duplicate otherwise.
	once := func(i int, dest string) bool {
		if j, ok := first[dest]; ok {
			dupOf[i] = j
			return false
		}
		first[dest] = i
		return true
	}
	for i, d := range rcpts {
		switch d.Transport {
		case policy.Maildir, policy.Mbox, policy.Forward:
		default:
			continue
		}
		if senderErr != nil {
			fail(i, "", senderErr)
			continue
		}
		if d.Transport == policy.Forward {
			addr, err := parseTarget(d.Target)
			if err != nil {
				fail(i, d.Target, err)
				continue
			}
			if !once(i, "forward\x00"+addr+"\x00"+rcptKey(d.Rcpt)) {
				continue
			}
			g := groups[addr]
			if g == nil {
				g = &forwardGroup{addr: addr}
				groups[addr] = g
				order = append(order, g)
			}
			g.idx = append(g.idx, i)
			continue
		}
		root, deliverTo := a.opts.MaildirRoot, a.deliverMaildir
		if d.Transport == policy.Mbox {
			root, deliverTo = a.opts.MboxRoot, a.deliverMbox
		}
		path, err := mailboxPath(root, d.Transport, d.Rcpt)
		if err != nil {
			fail(i, root, err)
			continue
		}
		if !once(i, d.Transport.String()+"\x00"+path) {
			continue
		}
		if local == nil {
			local = newLocalMessage(msg, from)
		}
		run(func() {
			if err := ctx.Err(); err != nil {
				fail(i, path, fmt.Errorf("not started: %w", err))
				return
			}
			if err := deliverTo(ctx, root, path, local, d.Rcpt); err != nil {
				fail(i, path, err)
			}
		})
	}
	for _, g := range order {
		run(func() {
			rs := make([]policy.MailAddr, len(g.idx))
			for j, i := range g.idx {
				rs[j] = rcpts[i].Rcpt
			}
			for j, err := range a.forward(ctx, g.addr, from, rs, msg) {
				if i := g.idx[j]; err != nil {
					fail(i, rcpts[i].Target, err)
				}
			}
		})
	}
	wg.Wait()

	var e Error
	for i, f := range failures {
		if j, ok := dupOf[i]; ok && failures[j] != nil {
			// The same mailbox or target: the first's fate is this one's.
			dest := failures[j].Dest
			if rcpts[i].Transport == policy.Forward {
				dest = rcpts[i].Target
			}
			f = &Failure{Rcpt: rcpts[i].Rcpt, Transport: rcpts[i].Transport, Dest: dest,
				Temporary: failures[j].Temporary, Err: failures[j].Err}
		}
		if f != nil {
			e.Failures = append(e.Failures, *f)
		}
	}
	if len(e.Failures) == 0 {
		return nil
	}
	return &e
}

// forwardGroup is the recipients (indexes into Deliver's rcpts) of one
// forward target.
type forwardGroup struct {
	addr string // host:port
	idx  []int
}

// rcptKey is a recipient's identity for de-duplication: the domain
// lower-cased, as the policy package compares addresses.
func rcptKey(a policy.MailAddr) string {
	if a.Null {
		return "<>"
	}
	return a.Local + "@" + strings.ToLower(a.Domain)
}

// checkSender refuses a sender that would break the Return-Path header,
// the mbox From line or the MAIL command.
func checkSender(from policy.MailAddr) error {
	if from.Null {
		return nil
	}
	if hasControl(from.Local) || hasControl(from.Domain) {
		return permanent(fmt.Errorf("sender %q contains control characters", from.String()))
	}
	return nil
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// errNoRoot is the failure of a copy whose transport has no root configured.
var errNoRoot = errors.New("no root directory configured")
