package milter

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/vsl-milter/vsl-milter/policy"
)

// errBudget is the cause of a delegation cut short by
// Options.DelegationBudget.
var errBudget = errors.New("the end of the message has spent its delegation budget")

// errNoDelegator fails the delegations of a server without a Delegator.
var errNoDelegator = errors.New("the rules delegate but no delegator is configured")

// delegate runs the delegations the rules ask for at the end of the
// message, one after the other: it hands the message to the filter,
// resumes the rules with what comes back, and goes on while the rules
// reach another delegate directive (in the same stage or a later one).
// The MTA waits meanwhile, kept patient by the progress notifications
// EndOfMessage sends. The differences between the returned message and
// the original are recorded by the policy layer as modifications, which
// EndOfMessage replays like the rules' own.
//
// A delegation that fails (the filter unreachable or refusing, no return
// within the service's timeout or within Options.DelegationBudget) gets
// the on_error decision; under on_error = accept the directive counts as
// next() and the rules go on, as after a script error. It
// returns the first decision that is not a delegation.
func (s *session) delegate(ctx context.Context, d policy.Decision) policy.Decision {
	budget := s.srv.opts.DelegationBudget
	if budget <= 0 {
		budget = DefaultDelegationBudget
	}
	dctx, cancel := context.WithTimeoutCause(ctx, budget, errBudget)
	defer cancel()
	for d.Action == policy.ActionDelegate && d.Delegation != nil {
		dl := d.Delegation
		args := []any{"stage", dl.Stage.String(), "directive", dl.Directive, "id", dl.ID}
		if dl.Service != nil {
			args = append(args, "service", dl.Service.Name, "delegator", dl.Service.Address, "receiver", dl.Service.Receiver)
		}
		start := time.Now()
		headers, body, err := s.roundTrip(dctx, dl)
		args = append(args, "elapsed", time.Since(start).Round(time.Millisecond).String())
		if err != nil {
			s.log.Warn("delegation failed; answering on_error", append(args, "error", err.Error(), "on_error", s.srv.opts.OnError.String())...)
			d = s.ps.FailDelegation(ctx, err)
			continue
		}
		s.log.Debug("delegated message back", args...)
		d = s.ps.Resume(ctx, headers, body)
		s.logScriptError(dl.Stage, d)
	}
	if d.Action == policy.ActionDelegate {
		// The policy layer asked for a delegation without describing it.
		d = s.ps.FailDelegation(ctx, errors.New("a delegation without a delegate directive"))
	}
	return d
}

// roundTrip hands the message to the filter of dl through the Delegator
// and returns what came back. The filter gets the whole message even when
// the rules see only its first MaxMessageSize bytes; when it sends that
// body back unchanged, the rules keep seeing the part they saw (and no
// body replacement is recorded).
func (s *session) roundTrip(ctx context.Context, dl *policy.Delegation) ([]policy.Header, []byte, error) {
	if s.srv.opts.Delegator == nil {
		return nil, nil, errNoDelegator
	}
	tx := s.ps.Tx
	msg := tx.DelegatedMessage()
	var full []byte
	if s.tx.body.truncated() && !bodyReplaced(tx) {
		var err error
		if full, err = s.tx.body.full(); err != nil {
			return nil, nil, err
		}
		head := msg[:len(msg)-len(tx.Body)]
		msg = append(head[:len(head):len(head)], full...)
	}
	headers, body, err := s.srv.opts.Delegator.Delegate(ctx, dl, tx.MailFrom, tx.Rcpts, msg)
	if err != nil {
		return nil, nil, err
	}
	if full != nil && bytes.Equal(body, full) {
		body = tx.Body
	}
	return headers, body, nil
}

// bodyReplaced reports whether the transaction's body was replaced (by a
// filter): it is then whole in the transaction.
func bodyReplaced(tx *policy.Transaction) bool {
	for _, mod := range tx.Modifications() {
		if mod.Kind == policy.ReplaceBody {
			return true
		}
	}
	return false
}
