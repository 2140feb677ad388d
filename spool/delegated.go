package spool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/delegate"
	"github.com/vsl-milter/vsl-milter/internal/durable"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/policy/service"
)

// Delegation in the spool (SEMANTICS §7). When the rules after the queue
// reach a delegate directive, the worker writes, in the message's
// directory, delegated.eml (the message as the filter gets it) and
// delegation.json (the pending delegation: what the rules had done, the
// service, the attempts), then moves the directory to delegated/, sends
// the message to the filter (Options.Delegator) and only then records it
// as sent, with its deadline (now + the service's timeout). The filter
// sends the message back to a receiver, whose Sink hands it to
// Spool.Return: matched by its delegation id, it is written to
// returned.eml beside the message, and the worker resumes the rules at
// the directive (policy.Resume, Session.RestoreDelegation,
// Session.Resume). A restart resumes the messages whose return is on
// disk; the others wait for their deadline. A send that fails, or a
// message not back by the deadline, is sent again after the spool's
// backoff; after RetryMax retries every recipient fails: DSN, dead queue.

// defaultDelegationTimeout is the deadline of a service without timeout.
const defaultDelegationTimeout = service.DefaultSMTPTimeoutV2

// maxEnded bounds the ended delegation ids remembered to take and drop a
// late return (rather than have the filter bounce it).
const maxEnded = 4096

// delegationRecord is delegation.json.
type delegationRecord struct {
	Pending policy.PendingDelegation `json:"pending"`
	Service serviceRecord            `json:"service"`
	// Sent: the filter took the message; it is due back by Deadline.
	Sent        bool      `json:"sent"`
	SentAt      time.Time `json:"sent_at,omitzero"`
	Deadline    time.Time `json:"deadline,omitzero"`
	Attempts    int       `json:"attempts"` // the failed attempts (send failures, timeouts)
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

// serviceRecord is the smtp service of a delegation.
type serviceRecord struct {
	Name     string        `json:"name"`
	Address  string        `json:"address"`
	Receiver string        `json:"receiver"`
	Timeout  time.Duration `json:"timeout"`
}

func (r *delegationRecord) delegation() *policy.Delegation {
	p := r.Pending
	return &policy.Delegation{
		Stage: p.Stage, Directive: p.Directive, ID: p.ID,
		Service: &service.SMTP{Name: r.Service.Name, Address: r.Service.Address, Receiver: r.Service.Receiver, Timeout: r.Service.Timeout},
	}
}

// claim marks a message as held by a worker; false when another worker
// holds it, in which case again asks that worker to schedule the message
// once more when done (a return came while it worked).
func (s *Spool) claim(id string, again bool) bool {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if _, held := s.busy[id]; held {
		if again {
			s.busy[id] = true
		}
		return false
	}
	s.busy[id] = false
	return true
}

// release ends a worker's hold on a message.
func (s *Spool) release(id string) {
	s.dmu.Lock()
	again := s.busy[id]
	delete(s.busy, id)
	s.dmu.Unlock()
	if again {
		s.sched.add(job{id: id, queue: QueueDelegated}, time.Time{})
	}
}

// register makes a delegation id known to Return.
func (s *Spool) register(delegID, id string) {
	s.dmu.Lock()
	s.delegated[delegID] = id
	delete(s.ended, delegID)
	s.dmu.Unlock()
}

// endDelegation forgets a delegation id, remembering it as ended.
func (s *Spool) endDelegation(delegID string) {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if _, ok := s.delegated[delegID]; !ok {
		return
	}
	delete(s.delegated, delegID)
	if len(s.ended) >= maxEnded {
		clear(s.ended)
	}
	s.ended[delegID] = struct{}{}
}

// countDelegation counts a delegation's result in the metrics, when they
// count delegations.
func (s *Spool) countDelegation(rec *delegationRecord, result string) {
	if m, ok := s.opts.Metrics.(delegate.Metrics); ok {
		m.Delegation(rec.Service.Name, result)
	}
}

// Return takes a message a filter sent back (the spool is a delegate.Sink,
// or part of one): when its delegation id is one of the spool's delegated
// messages, the message is written durably beside it, and the message is
// scheduled to resume. An id the spool does not know is an error wrapping
// delegate.ErrUnknownID; one whose delegation has ended (a duplicate or
// late return), delegate.ErrEnded.
func (s *Spool) Return(ctx context.Context, r delegate.Returned) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return errors.New("spool: the spool is closed")
	}
	s.dmu.Lock()
	defer s.dmu.Unlock()
	id, ok := s.delegated[r.ID]
	if !ok {
		if _, ended := s.ended[r.ID]; ended {
			return fmt.Errorf("delegation %q: %w", r.ID, delegate.ErrEnded)
		}
		return fmt.Errorf("delegation %q: %w", r.ID, delegate.ErrUnknownID)
	}
	dir := s.path(QueueDelegated, id)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delegation %q: the message moved on: %w", r.ID, delegate.ErrEnded)
	}
	if b, err := os.ReadFile(s.path(QueueDelegated, id, fileReturned)); err == nil && returnedID(b) == r.ID {
		return fmt.Errorf("delegation %q: returned already: %w", r.ID, delegate.ErrEnded)
	}
	if err := replaceFile(dir, fileReturned, renderMessage(r.Headers, r.Body)); err != nil {
		return fmt.Errorf("spool: delegation %q: %w", r.ID, err)
	}
	s.log.Info("delegated message returned", "id", id, "delegation", r.ID, "directive", r.Directive, "receiver", r.Receiver)
	s.sched.add(job{id: id, queue: QueueDelegated}, time.Time{})
	return nil
}

// renderMessage writes a header and body back as a message.
func renderMessage(headers []policy.Header, body []byte) []byte {
	var b bytes.Buffer
	for _, h := range headers {
		b.WriteString(h.Name + ": " + h.Value + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// returnedID reads the delegation id of a returned message.
func returnedID(msg []byte) string {
	headers, _ := splitMessage(msg)
	for _, h := range headers {
		if strings.EqualFold(h.Name, policy.DelegationHeader) {
			id, _, _ := policy.ParseDelegationHeader(h.Value)
			return id
		}
	}
	return ""
}

// readRecord reads m's delegation.json.
func (s *Spool) readRecord(m *message) (*delegationRecord, error) {
	b, err := os.ReadFile(s.file(m, fileDelegation))
	if err != nil {
		return nil, err
	}
	var rec delegationRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%w: decode %s: %w", errCorrupt, s.file(m, fileDelegation), err)
	}
	return &rec, nil
}

// saveRecord replaces m's delegation.json durably.
func (s *Spool) saveRecord(m *message, rec *delegationRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode delegation: %w", err)
	}
	return replaceFile(s.path(m.queue, m.id), fileDelegation, b)
}

// recoverDelegated registers the delegation of a message found in
// delegated/ at Open, and returns when to look at it: now when its return
// is on disk (or its record unreadable), else at its deadline or its next
// attempt.
func (s *Spool) recoverDelegated(id string, now time.Time) time.Time {
	m := &message{id: id, queue: QueueDelegated}
	rec, err := s.readRecord(m)
	if err != nil {
		return now
	}
	s.register(rec.Pending.ID, id)
	if b, err := os.ReadFile(s.file(m, fileReturned)); err == nil && returnedID(b) == rec.Pending.ID {
		return now
	}
	switch {
	case rec.Sent && rec.Deadline.After(now):
		return rec.Deadline
	case !rec.Sent && rec.NextAttempt.After(now):
		return rec.NextAttempt
	}
	return now
}

// delegateOut hands m to the filter of the delegation sess is waiting on:
// the message and the delegation are written, the message moves to
// delegated/, then it is sent. The worker holds m. done is always true.
func (s *Spool) delegateOut(ctx context.Context, log hclog.Logger, m *message, sess *policy.Session) (done bool) {
	p, ok := sess.SaveDelegation()
	dl := sess.Tx.Delegation()
	if !ok || dl == nil || dl.Service == nil {
		// Not possible with a delegate directive; fail it into on_error.
		return s.decided(ctx, log, m, sess, sess.FailDelegation(ctx, errors.New("the delegation names no smtp service")))
	}
	timeout := dl.Service.Timeout
	if timeout <= 0 {
		timeout = defaultDelegationTimeout
	}
	rec := &delegationRecord{
		Pending: p,
		Service: serviceRecord{Name: dl.Service.Name, Address: dl.Service.Address, Receiver: dl.Service.Receiver, Timeout: timeout},
	}
	dir := s.path(m.queue, m.id)
	if err := replaceFile(dir, fileDelegated, sess.Tx.DelegatedMessage()); err != nil {
		s.retryLater(log, job{m.id, m.queue}, err)
		return true
	}
	if err := s.saveRecord(m, rec); err != nil {
		s.retryLater(log, job{m.id, m.queue}, err)
		return true
	}
	// A return of an earlier delegation is no longer needed (its id no
	// longer matches the record's anyway).
	if err := os.Remove(s.file(m, fileReturned)); err == nil {
		durable.SyncDir(dir)
	}
	if err := s.move(m, QueueDelegated); err != nil {
		// Not delegated yet: the rules run again at the next attempt.
		s.retryLater(log, job{m.id, m.queue}, err)
		return true
	}
	log.Info("message delegated", "stage", p.Stage.String(), "directive", p.Directive, "delegation", p.ID,
		"service", rec.Service.Name, "filter", rec.Service.Address)
	s.sendDelegation(ctx, log, m, rec)
	return true
}

// sendDelegation sends m (in delegated/) to its filter; on success the
// record says it is sent and the message is looked at again at its
// deadline, otherwise it is retried after the backoff, or given up.
func (s *Spool) sendDelegation(ctx context.Context, log hclog.Logger, m *message, rec *delegationRecord) {
	msg, err := os.ReadFile(s.file(m, fileDelegated))
	if err != nil {
		s.retryLater(log, job{m.id, m.queue}, err)
		return
	}
	s.register(rec.Pending.ID, m.id) // before the send: a proxying filter returns it before it answers
	env := rec.Pending.Envelope
	err = s.opts.Delegator.Send(ctx, rec.delegation(), env.MailFrom, env.Rcpts, msg)
	if ctx.Err() != nil {
		s.requeue(m) // shutting down: sent again by the next Run
		return
	}
	now := time.Now().UTC()
	if err != nil {
		s.countDelegation(rec, delegate.Result(err))
		s.delegationFailed(ctx, log, m, rec, now, fmt.Sprintf("sending to the filter %s: %v", rec.Service.Address, err))
		return
	}
	rec.Sent, rec.SentAt, rec.Deadline, rec.NextAttempt = true, now, now.Add(rec.Service.Timeout), time.Time{}
	if err := s.saveRecord(m, rec); err != nil {
		// Not recorded as sent: the next attempt sends it again.
		s.retryLater(log, job{m.id, m.queue}, err)
		return
	}
	log.Debug("delegated message sent", "delegation", rec.Pending.ID, "filter", rec.Service.Address, "deadline", rec.Deadline)
	s.sched.add(job{id: m.id, queue: QueueDelegated}, rec.Deadline)
}

// delegationFailed records a failed attempt of a delegation: it is tried
// again after the backoff, or, after the last retry, given up.
func (s *Spool) delegationFailed(ctx context.Context, log hclog.Logger, m *message, rec *delegationRecord, now time.Time, why string) {
	rec.Attempts++
	rec.Sent, rec.LastError = false, why
	if rec.Attempts > s.opts.RetryMax {
		s.giveUpDelegation(ctx, log, m, rec, now)
		return
	}
	rec.NextAttempt = now.Add(s.backoff(rec.Attempts))
	if err := s.saveRecord(m, rec); err != nil {
		s.retryLater(log, job{m.id, m.queue}, err)
		return
	}
	log.Warn("delegation failed; trying again later", "delegation", rec.Pending.ID, "directive", rec.Pending.Directive,
		"service", rec.Service.Name, "error", why, "attempts", rec.Attempts, "next_attempt", rec.NextAttempt)
	s.sched.add(job{id: m.id, queue: QueueDelegated}, rec.NextAttempt)
}

// giveUpDelegation fails every recipient of a delegation that failed too
// often: the sender gets a DSN and the message goes to the dead queue.
func (s *Spool) giveUpDelegation(ctx context.Context, log hclog.Logger, m *message, rec *delegationRecord, now time.Time) {
	s.endDelegation(rec.Pending.ID)
	status := "5.3.0"
	if strings.Contains(rec.LastError, "not back") {
		status = "5.4.7"
	}
	f := failure{Status: status, Error: fmt.Sprintf("delegation %q to the filter %s (service %s) failed: %s",
		rec.Pending.Directive, rec.Service.Address, rec.Service.Name, rec.LastError)}
	env := rec.Pending.Envelope
	m.st.From = env.MailFrom
	m.st.Rcpts = m.st.Rcpts[:0]
	for _, r := range env.Rcpts {
		m.st.Rcpts = append(m.st.Rcpts, rcptState{Rcpt: r, Transport: policy.Deliver.String(), Status: statusFailed, At: now, Failure: &f})
	}
	m.st.Attempts, m.st.LastAttempt = rec.Attempts, now
	m.st.Dead = fmt.Sprintf("delegation failed, given up after %d attempts: %s", rec.Attempts, rec.LastError)
	log.Warn("delegation given up", "delegation", rec.Pending.ID, "directive", rec.Pending.Directive, "attempts", rec.Attempts)
	s.finish(ctx, log, m)
}

// processDelegated looks at a message in delegated/ (the worker holds
// it): it resumes the rules when the message came back, sends it again
// when due, gives the delegation up after the last retry, or, woken early,
// does nothing (a later job is scheduled).
func (s *Spool) processDelegated(ctx context.Context, log hclog.Logger, j job) {
	if _, err := os.Stat(s.path(QueueDelegated, j.id)); errors.Is(err, fs.ErrNotExist) {
		return // a stale wake-up: the message moved on
	}
	m, err := s.load(QueueDelegated, j.id)
	switch {
	case err == nil:
	case errors.Is(err, errCorrupt):
		s.buryDamaged(log, j, err)
		return
	default:
		s.retryLater(log, j, err)
		return
	}
	rec, err := s.readRecord(m)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Not what the spool writes; the rules run again from the start.
		log.Warn("delegated message without its delegation; the rules run again")
		if err := s.move(m, QueueWorking); err != nil {
			s.retryLater(log, j, err)
			return
		}
		s.requeue(m)
		return
	case errors.Is(err, errCorrupt):
		log.Error("damaged delegation; message moved to the dead queue", "error", err)
		if err := s.move(m, QueueDead); err != nil {
			log.Error("cannot move the message to the dead queue", "error", err)
		}
		return
	case err != nil:
		s.retryLater(log, j, err)
		return
	}
	s.register(rec.Pending.ID, m.id)
	if back, err := os.ReadFile(s.file(m, fileReturned)); err == nil && returnedID(back) == rec.Pending.ID {
		s.countDelegation(rec, delegate.ResultSuccess)
		if !s.resumeDelegation(ctx, log, m, rec, back) {
			s.deliverRound(ctx, log, m)
		}
		return
	}
	now := time.Now().UTC()
	switch {
	case rec.Sent && now.Before(rec.Deadline):
		return // woken early; the deadline's job comes
	case rec.Sent:
		s.countDelegation(rec, delegate.ResultTimeout)
		s.delegationFailed(ctx, log, m, rec, now, fmt.Sprintf("the message was not back on %s within %v", rec.Service.Receiver, rec.Service.Timeout))
		return
	case rec.Attempts > s.opts.RetryMax:
		s.giveUpDelegation(ctx, log, m, rec, now) // a crash cut the giving up short
		return
	case now.Before(rec.NextAttempt):
		return // woken early; the next attempt's job comes
	}
	if s.opts.Delegator == nil {
		rec.LastError = "no delegator configured"
		s.giveUpDelegation(ctx, log, m, rec, now)
		return
	}
	s.sendDelegation(ctx, log, m, rec)
}

// resumeDelegation runs the rules on from the delegate directive with the
// message that came back; done as for runRules.
func (s *Spool) resumeDelegation(ctx context.Context, log hclog.Logger, m *message, rec *delegationRecord, back []byte) (done bool) {
	headers, body := splitMessage(back)
	var rules *policy.Rules
	if s.opts.Rules != nil {
		rules = s.opts.Rules()
	}
	if rules == nil {
		// The rules are gone: the message is delivered as it came back.
		s.endDelegation(rec.Pending.ID)
		env := rec.Pending.Envelope
		var clean []policy.Header
		for _, h := range headers {
			if !strings.EqualFold(h.Name, policy.DelegationHeader) {
				clean = append(clean, h)
			}
		}
		return s.plan(log, m, env.MailFrom, deliverAll(env.Rcpts), true, renderMessage(clean, body))
	}
	raw, err := os.ReadFile(s.file(m, fileMessage))
	if err != nil {
		s.retryLater(log, job{m.id, m.queue}, err)
		return true
	}
	oh, ob := splitMessage(raw)
	sess := policy.Resume(rules, s.opts.SessionOpts, m.env.Saved, oh, ob)
	var d policy.Decision
	if _, err := sess.RestoreDelegation(rec.Pending); err != nil {
		log.Warn("cannot resume the rules at the delegate directive; they run again from the start", "error", err)
		d = sess.AfterQueue(ctx)
	} else {
		log.Info("rules resumed after the delegation", "delegation", rec.Pending.ID, "directive", rec.Pending.Directive)
		d = sess.Resume(ctx, headers, body)
	}
	if ctx.Err() != nil {
		s.requeue(m) // the return stays on disk: resumed by the next Run
		return true
	}
	s.endDelegation(rec.Pending.ID)
	return s.decided(ctx, log, m, sess, d)
}
