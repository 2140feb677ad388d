// Package delegate hands messages to third-party SMTP filters for vSL's
// delegate directive and takes them back (SEMANTICS §7).
//
// A delegation is a round trip. Send gives the message, with the
// X-VSMTP-DELEGATION header the policy layer prepends to it
// (policy.Transaction.DelegatedMessage), by SMTP to the service's
// delegator.address. The filter (an antivirus proxy such as clamsmtpd, an
// MTA with content checks, ...) relays it back by SMTP to the service's
// receiver address, where a Receiver takes it: it reads the delegation id
// from that header and hands the message to a Sink. A message without a
// well-formed delegation header, or whose id no delegation waits for, is
// refused with 550 5.7.1 and goes nowhere: the receiver is not a way into
// the mail flow.
//
// Two kinds of front end use it. The milter waits for the message while the
// MTA waits at the end of the message: it uses a Manager with its in-memory
// Waiters as the Sink (Manager.RoundTrip, Manager.Delegate). The standalone
// server's spool keeps delegated messages across restarts: it gives the
// Manager its own Sink, a persistent "delegated queue", which gets the
// returns whose id the Waiters do not know, and sends with Manager.Send
// once the message and its delegation are on disk (see Sink).
//
// The package knows SMTP, the delegation header and what a
// policy.Delegation says about the filter. It does not run rules, nor
// decide what a failed delegation answers (the front end calls
// policy.Session.Resume or FailDelegation), nor how a front end applies
// what the filter changed.
package delegate

import (
	"context"
	"errors"
	"net"

	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/policy"
)

// The errors of a delegation, checked with errors.Is.
var (
	// ErrUnreachable: the filter could not be connected to.
	ErrUnreachable = errors.New("filter unreachable")
	// ErrTimeout: the delegation did not complete (the filter did not
	// answer, or the message did not come back) within the service's
	// timeout.
	ErrTimeout = errors.New("the delegation took longer than the service's timeout")
	// ErrUnknownID: a Sink was handed a message whose delegation id no
	// delegation waits for. The Receiver refuses it (550 5.7.1).
	ErrUnknownID = errors.New("no delegation waits for this id")
	// ErrEnded: a Sink was handed a message for a delegation that ended
	// recently (it came back already, or was given up). The Receiver takes
	// it (250) and drops it: refusing it would make the filter bounce a
	// copy of a message its sender was already answered for.
	ErrEnded = errors.New("the delegation with this id has ended")
	// ErrDuplicateID: Wait was called for an id someone already waits for.
	ErrDuplicateID = errors.New("a delegation with this id is already waiting")
	// ErrNoHeader: the message has no well-formed X-VSMTP-DELEGATION
	// header. The Receiver refuses it (550 5.7.1).
	ErrNoHeader = errors.New("no valid " + policy.DelegationHeader + " header")
	// ErrClosed: the Manager or Receiver is closed.
	ErrClosed = errors.New("the delegation manager or receiver is closed")
)

// The results of a delegation, as Result names them for the service and
// result labels of vsl_delegations_total.
const (
	ResultSuccess     = "success"     // the message came back
	ResultUnreachable = "unreachable" // the filter could not be connected to
	ResultRefused     = "refused"     // the filter refused the message (an SMTP error reply)
	ResultTimeout     = "timeout"     // no answer, or no return, within the timeout
	ResultFailure     = "failure"     // anything else (a broken connection, shutdown, ...)
)

// Result names the result of a delegation that ended with err (nil:
// success), for logs and metrics.
func Result(err error) string {
	var se *smtp.SMTPError
	switch {
	case err == nil:
		return ResultSuccess
	case errors.Is(err, ErrUnreachable):
		return ResultUnreachable
	case errors.As(err, &se):
		return ResultRefused
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return ResultTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ResultTimeout
	}
	return ResultFailure
}

// Returned is a message a filter sent back to a receiver.
type Returned struct {
	// ID and Directive are read from the X-VSMTP-DELEGATION header.
	ID        string
	Directive string
	// From and Rcpts are the envelope the filter used. The rules resume
	// with the transaction's own envelope; these are for logs.
	From  policy.MailAddr
	Rcpts []policy.MailAddr
	// Headers are the message's header fields in order, the delegation
	// header included; a value keeps its folding, with CRLF line ends.
	Headers []policy.Header
	// Body is the message's body as received.
	Body []byte
	// Receiver is the address the message came back on.
	Receiver string
}

// Sink takes the messages that come back on a Receiver. Its methods are
// called from many goroutines at once.
//
// The milter's Sink is Waiters: the message goes to the end-of-message
// callback waiting for its id. The standalone spool can implement Sink
// with a persistent delegated queue: it writes each delegated message to
// that queue (with its id, the transaction and the delegation) before
// Manager.Send; Return then looks the id up in the queue, stores the
// returned message durably beside it, and returns nil, and the spool
// resumes the rules from there (policy.Resume, then Session.Resume), even
// after a restart. Its own timer gives up delegations that do not return
// (Session.FailDelegation), as the milter's RoundTrip does.
type Sink interface {
	// Return is called once for every message that comes back with a
	// well-formed X-VSMTP-DELEGATION header, before the filter is
	// answered. nil means the message was taken (250); an error wrapping
	// ErrUnknownID refuses it (550 5.7.1: the filter bounces it, nothing
	// is injected); an error wrapping ErrEnded takes it and drops it
	// (250); any other error refuses it temporarily (451 4.3.0: the
	// filter keeps it and tries again). ctx ends when the Receiver closes.
	Return(ctx context.Context, m Returned) error
}
