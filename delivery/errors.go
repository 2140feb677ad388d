package delivery

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/policy"
)

// Error is what Deliver returns when at least one copy was not delivered.
// The copies not listed were delivered.
type Error struct {
	// Failures are the failed copies, in the order of Deliver's rcpts.
	Failures []Failure
}

// Failure is one copy that was not delivered.
type Failure struct {
	Rcpt      policy.MailAddr
	Transport policy.Transport
	// Dest is where the copy was going: the maildir directory or mbox
	// file, the root when no path could be made from the address, or the
	// forward target as the rule wrote it.
	Dest string
	// Temporary reports that trying again later may succeed (a 4xx reply,
	// a network or disk error, a lock not obtained in time, a cancelled
	// context); otherwise the failure is permanent (a 5xx reply, an
	// address that cannot name a mailbox, an invalid forward target).
	Temporary bool
	// Err is the cause. A reply of the forward target is a
	// *smtp.SMTPError (github.com/emersion/go-smtp) in its chain.
	Err error
}

// Error renders the failures, one per recipient.
func (e *Error) Error() string {
	if len(e.Failures) == 1 {
		return e.Failures[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d copies not delivered: ", len(e.Failures))
	for i := range e.Failures {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Failures[i].Error())
	}
	return b.String()
}

// Unwrap returns the failures, for errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i := range e.Failures {
		errs[i] = &e.Failures[i]
	}
	return errs
}

// Temporary reports whether at least one failure is temporary, so that
// trying the message again later may deliver more copies.
func (e *Error) Temporary() bool {
	for _, f := range e.Failures {
		if f.Temporary {
			return true
		}
	}
	return false
}

// Error names the recipient, the transport and where the copy was going.
func (f *Failure) Error() string {
	kind := "permanent"
	if f.Temporary {
		kind = "temporary"
	}
	prep := "at"
	if f.Transport == policy.Forward {
		prep = "to"
	}
	dest := ""
	if f.Dest != "" {
		dest = fmt.Sprintf(" %s %s", prep, f.Dest)
	}
	return fmt.Sprintf("%s failure delivering to <%s> by %s%s: %v", kind, f.Rcpt, f.Transport, dest, f.Err)
}

// Unwrap returns the cause.
func (f *Failure) Unwrap() error { return f.Err }

// permError marks a failure as permanent.
type permError struct{ err error }

func (e permError) Error() string { return e.err.Error() }
func (e permError) Unwrap() error { return e.err }

// permanent marks err as a permanent failure.
func permanent(err error) error { return permError{err} }

// temporary classifies a failure: an SMTP reply by its code (only 5xx is
// permanent), errors marked permanent as such, and everything else (I/O,
// network, context) as temporary.
func temporary(err error) bool {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code/100 != 5
	}
	var pe permError
	return !errors.As(err, &pe)
}
