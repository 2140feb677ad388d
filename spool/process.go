package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/policy"
)

// errDelegation is the failure of a delegate directive reached from the
// spool when it has no Options.Delegator.
var errDelegation = errors.New("delegation is not configured for messages in the spool")

// process takes one message one step further: the rules if they have not
// run, then a delivery round; then it finishes the message, defers it or
// (when ctx ended) leaves it where it is.
func (s *Spool) process(ctx context.Context, j job) {
	log := s.log.With("id", j.id)
	if !s.claim(j.id, j.queue == QueueDelegated) {
		if j.queue != QueueDelegated {
			// A stale wake-up of a delegation holds it for a moment.
			s.sched.add(j, time.Now().Add(20*time.Millisecond))
		}
		return
	}
	defer s.release(j.id)
	if j.queue == QueueDelegated {
		s.processDelegated(ctx, log, j)
		return
	}
	if j.queue == QueueDeferred {
		m := &message{id: j.id, queue: j.queue}
		if err := s.move(m, QueueWorking); err != nil {
			s.retryLater(log, j, err)
			return
		}
		j.queue = m.queue
	}
	m, err := s.load(j.queue, j.id)
	switch {
	case err == nil:
	case errors.Is(err, errCorrupt):
		s.buryDamaged(log, j, err)
		return
	case errors.Is(err, fs.ErrNotExist):
		log.Warn("message vanished from its queue", "queue", j.queue)
		s.forget(j.id)
		return
	default:
		s.retryLater(log, j, err)
		return
	}
	if !m.st.Planned {
		if done := s.runRules(ctx, log, m); done {
			return
		}
	}
	s.deliverRound(ctx, log, m)
}

// retryLater schedules a message again after RetryPeriod, without any
// change on disk: the spool could not write (a full disk, an I/O error).
func (s *Spool) retryLater(log hclog.Logger, j job, err error) {
	log.Error("cannot record the message's progress; trying again later", "error", err, "retry_in", s.opts.RetryPeriod)
	s.sched.add(j, time.Now().Add(s.opts.RetryPeriod))
}

// requeue puts a message whose processing was cut short by the end of
// Run back into the scheduler, for a later Run.
func (s *Spool) requeue(m *message) { s.sched.add(job{id: m.id, queue: m.queue}, time.Time{}) }

// runRules runs the postq and delivery stages on a message and records
// their plan; done reports that the message needs nothing more now (it was
// discarded, quarantined, deferred or finished, or ctx ended).
func (s *Spool) runRules(ctx context.Context, log hclog.Logger, m *message) (done bool) {
	raw, err := os.ReadFile(s.file(m, fileMessage))
	if err != nil {
		s.retryLater(log, job{m.id, m.queue}, err)
		return true
	}
	saved := m.env.Saved
	var rules *policy.Rules
	if s.opts.Rules != nil {
		rules = s.opts.Rules()
	}
	if rules == nil {
		// No rules: every recipient is delivered by MX.
		return s.plan(log, m, saved.MailFrom, deliverAll(saved.Rcpts), false, nil)
	}
	headers, body := splitMessage(raw)
	sess := policy.Resume(rules, s.opts.SessionOpts, saved, headers, body)
	var d policy.Decision
	if m.env.Kind == kindDSN {
		// A DSN comes from this host: it is not filtered, only routed.
		d = sess.Delivery(ctx)
	} else {
		d = sess.AfterQueue(ctx)
	}
	return s.decided(ctx, log, m, sess, d)
}

// decided acts on the decision of the rules after the queue, run on m by
// sess: a delegation, a discard, a quarantine, a refusal, or the delivery
// plan; done as for runRules.
func (s *Spool) decided(ctx context.Context, log hclog.Logger, m *message, sess *policy.Session, d policy.Decision) (done bool) {
	if d.Action == policy.ActionDelegate {
		if s.opts.Delegator == nil {
			d = sess.FailDelegation(ctx, errDelegation)
		} else if ctx.Err() == nil {
			return s.delegateOut(ctx, log, m, sess)
		}
	}
	saved := m.env.Saved
	if ctx.Err() != nil {
		// Shutting down: the rules' verdict may be the deadline's.
		s.requeue(m)
		return true
	}
	logDecision(log, d)
	tx := sess.Tx
	switch d.Action {
	case policy.ActionDiscard:
		log.Info("message discarded by the rules", "rule", d.Verdict.Rule, "stage", d.Verdict.Stage.String())
		if err := s.remove(m); err != nil {
			log.Error("cannot remove the discarded message", "error", err)
		}
		return true
	case policy.ActionQuarantine:
		// Under the spool's id: quarantining it again after a crash
		// rewrites the same files.
		if err := s.quarantine(ctx, d.Quarantine, m.id, tx.Save(), tx.MessageText()); err != nil {
			s.retryLater(log, job{m.id, m.queue}, err)
			return true
		}
		log.Info("message quarantined by the rules", "quarantine", d.Quarantine, "rule", d.Verdict.Rule)
		if err := s.remove(m); err != nil {
			log.Error("cannot remove the quarantined message", "error", err)
		}
		return true
	case policy.ActionRefuse:
		f := refusalFailure(d)
		now := time.Now().UTC()
		m.st.From = saved.MailFrom
		m.st.Rcpts = m.st.Rcpts[:0]
		for _, r := range saved.Rcpts {
			st := statusFailed
			if f.Temporary {
				st = statusPending
			}
			m.st.Rcpts = append(m.st.Rcpts, rcptState{Rcpt: r, Transport: policy.Deliver.String(), Status: st, At: now, Failure: &f})
		}
		if f.Temporary {
			// A script error under on_error = tempfail, or a 4xx: the
			// rules run again at the next attempt.
			m.st.Attempts++
			s.deferOrFinish(ctx, log, m, now)
			return true
		}
		m.st.Dead = "refused by the rules after the queue: " + f.Error
		s.finish(ctx, log, m)
		return true
	}
	var final []byte
	if textChanged(tx) {
		final = tx.MessageText()
	}
	return s.plan(log, m, tx.MailFrom, tx.Deliveries(), final != nil, final)
}

// plan records the rules' delivery plan (and the message as they left
// it), then moves the message to working; done as for runRules.
func (s *Spool) plan(log hclog.Logger, m *message, from policy.MailAddr, ds []policy.DeliveryChoice, modified bool, final []byte) (done bool) {
	if modified {
		dir := s.path(m.queue, m.id)
		if err := replaceFile(dir, fileFinal, final); err != nil {
			s.retryLater(log, job{m.id, m.queue}, err)
			return true
		}
	}
	m.st.Planned, m.st.Modified, m.st.From = true, modified, from
	m.st.Rcpts = m.st.Rcpts[:0]
	for _, d := range ds {
		m.st.Rcpts = append(m.st.Rcpts, rcptState{Rcpt: d.Rcpt, Transport: d.Transport.String(), Target: d.Target, Status: statusPending})
	}
	if err := s.saveState(m); err != nil {
		s.retryLater(log, job{m.id, m.queue}, err)
		return true
	}
	if len(ds) == 0 {
		log.Info("the rules left no recipient; message dropped")
		if err := s.remove(m); err != nil {
			log.Error("cannot remove the message", "error", err)
		}
		return true
	}
	if err := s.move(m, QueueWorking); err != nil {
		// The state says what to do wherever the directory is.
		log.Warn("cannot move the message to working", "error", err)
	}
	return false
}

// deliverAll is the plan without rules: every recipient by MX.
func deliverAll(rcpts []policy.MailAddr) []policy.DeliveryChoice {
	ds := make([]policy.DeliveryChoice, len(rcpts))
	for i, r := range rcpts {
		ds[i] = policy.DeliveryChoice{Rcpt: r, Transport: policy.Deliver}
	}
	return ds
}

// logDecision logs a script error behind a decision.
func logDecision(log hclog.Logger, d policy.Decision) {
	if d.Verdict.Err != nil {
		log.Warn("script error after the queue", "stage", d.Verdict.Stage.String(), "rule", d.Verdict.Rule,
			"error", d.Verdict.Err, "action", d.Action.String())
	}
}

// refusalFailure turns a refusal by the rules after the queue into a
// failure: a 4xx (on_error = tempfail, or a rule's 4xx code) is temporary,
// a 5xx permanent.
func refusalFailure(d policy.Decision) failure {
	r := d.Reply
	code := r.Code
	if code < 400 || code > 599 {
		code = 554
	}
	f := failure{Temporary: code < 500, Code: code, Enhanced: r.Enhanced, Status: r.Enhanced, Reply: r.Text}
	if !validStatus(f.Status, code/100) {
		f.Status = fmt.Sprintf("%d.7.1", code/100)
	}
	switch {
	case d.Verdict.Err != nil:
		f.Error = fmt.Sprintf("script error in the %s stage: %v", d.Verdict.Stage, d.Verdict.Err)
	case d.Verdict.Rule != "":
		f.Error = fmt.Sprintf("refused by rule %q in the %s stage: %d %s", d.Verdict.Rule, d.Verdict.RuleStage, code, r.Text)
	default:
		f.Error = fmt.Sprintf("refused in the %s stage: %d %s", d.Verdict.Stage, code, r.Text)
	}
	return f
}

// textChanged reports whether the rules changed the message's header or
// body (envelope changes do not count): if not, the message is delivered
// byte for byte as it was accepted.
func textChanged(tx *policy.Transaction) bool {
	for _, mod := range tx.Modifications() {
		switch mod.Kind {
		case policy.AddHeader, policy.InsertHeader, policy.ChangeHeader, policy.DeleteHeader, policy.ReplaceBody:
			return true
		}
	}
	return false
}

// deliverRound tries every pending recipient once, recording each group's
// results as they come, then finishes or defers the message.
func (s *Spool) deliverRound(ctx context.Context, log hclog.Logger, m *message) {
	name := fileMessage
	if m.st.Modified {
		name = fileFinal
	}
	msg, err := os.ReadFile(s.file(m, name))
	if err != nil {
		s.retryLater(log, job{m.id, m.queue}, err)
		return
	}
	var (
		mu       sync.Mutex
		writeErr error
	)
	// record applies a group's results and saves them before the next
	// group's: a restart does not deliver these recipients again.
	record := func(res map[int]result) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now().UTC()
		for i, r := range res {
			rs := &m.st.Rcpts[i]
			rs.At = now
			switch {
			case r.fail == nil:
				rs.Status, rs.Failure = statusDelivered, nil
				log.Info("delivered", "rcpt", rs.Rcpt.String(), "transport", rs.Transport, "remote", r.remote)
			case r.fail.Temporary:
				rs.Failure = r.fail
				log.Warn("delivery failed temporarily", "rcpt", rs.Rcpt.String(), "transport", rs.Transport, "error", r.fail.Error)
			default:
				rs.Status, rs.Failure = statusFailed, r.fail
				log.Warn("delivery failed", "rcpt", rs.Rcpt.String(), "transport", rs.Transport, "error", r.fail.Error)
			}
		}
		if err := s.saveState(m); err != nil && writeErr == nil {
			writeErr = err
		}
	}
	s.deliver(ctx, msg, m, record)
	switch {
	case writeErr != nil:
		s.retryLater(log, job{m.id, m.queue}, writeErr)
		return
	case ctx.Err() != nil:
		// Shutting down: what was recorded stays; the rest is tried
		// again by the next Run, without counting this round.
		s.requeue(m)
		return
	}
	for _, r := range m.st.Rcpts {
		if r.Status == statusPending {
			m.st.Attempts++
			s.deferOrFinish(ctx, log, m, time.Now().UTC())
			return
		}
	}
	s.finish(ctx, log, m)
}

// deferOrFinish schedules the next attempt of a message that failed
// temporarily, or, after the last retry, fails its pending recipients
// and finishes it.
func (s *Spool) deferOrFinish(ctx context.Context, log hclog.Logger, m *message, now time.Time) {
	m.st.LastAttempt = now
	if m.st.Attempts > s.opts.RetryMax {
		for i := range m.st.Rcpts {
			if r := &m.st.Rcpts[i]; r.Status == statusPending {
				r.Status = statusFailed
			}
		}
		m.st.NextAttempt = time.Time{}
		if m.st.Dead == "" {
			m.st.Dead = fmt.Sprintf("temporary failures, given up after %d attempts", m.st.Attempts)
		}
		s.finish(ctx, log, m)
		return
	}
	m.st.NextAttempt = now.Add(s.backoff(m.st.Attempts))
	if err := s.saveState(m); err != nil {
		s.retryLater(log, job{m.id, m.queue}, err)
		return
	}
	if err := s.move(m, QueueDeferred); err != nil {
		log.Warn("cannot move the message to deferred", "error", err)
	}
	log.Info("deferred", "attempts", m.st.Attempts, "next_attempt", m.st.NextAttempt)
	s.sched.add(job{id: m.id, queue: m.queue}, m.st.NextAttempt)
}

// finish ends a message whose recipients are all delivered or failed:
// without failures it is removed; otherwise its sender (unless null) gets
// a DSN, enqueued first, and it goes to the dead queue.
func (s *Spool) finish(ctx context.Context, log hclog.Logger, m *message) {
	var failed []rcptState
	for _, r := range m.st.Rcpts {
		if r.Status == statusFailed {
			failed = append(failed, r)
		}
	}
	if len(failed) == 0 {
		if err := s.remove(m); err != nil {
			log.Error("cannot remove the delivered message", "error", err)
		}
		log.Info("message done", "rcpts", len(m.st.Rcpts))
		return
	}
	if !m.st.From.Null && m.st.DSN == "" {
		id, err := s.sendDSN(ctx, m, failed)
		if err != nil {
			s.retryLater(log, job{m.id, m.queue}, err)
			return
		}
		m.st.DSN = id
		log.Info("delivery status notification queued", "dsn", id, "to", m.st.From.String(), "failed", len(failed))
	}
	if m.st.Dead == "" {
		m.st.Dead = "permanent failures"
	}
	if err := s.saveState(m); err != nil {
		s.retryLater(log, job{m.id, m.queue}, err)
		return
	}
	if err := s.move(m, QueueDead); err != nil {
		s.retryLater(log, job{m.id, m.queue}, err)
		return
	}
	log.Warn("message moved to the dead queue", "reason", m.st.Dead, "failed", len(failed), "rcpts", len(m.st.Rcpts))
}

// sendDSN enqueues the DSN of a message under its fixed id.
func (s *Spool) sendDSN(ctx context.Context, m *message, failed []rcptState) (string, error) {
	name := fileMessage
	if m.st.Modified {
		name = fileFinal
	}
	orig, err := os.ReadFile(s.file(m, name))
	if err != nil {
		return "", err
	}
	id := dsnID(m.id)
	now := time.Now()
	text := buildDSN(dsnInput{
		ID: id, Hostname: s.opts.Hostname, Date: now, Arrival: m.env.EnqueuedAt,
		Sender: m.st.From, Failed: failed, Header: headerBlock(orig),
	})
	loop := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0) // made here, as by a local client
	saved := policy.Saved{
		ClientAddr: loop, ServerAddr: loop, ServerName: s.opts.Hostname, ConnectedAt: now, Helo: s.opts.Hostname,
		MailFrom: policy.MailAddr{Null: true}, MailAt: now, Rcpts: []policy.MailAddr{m.st.From}, MessageID: id,
	}
	if _, err := s.enqueue(context.WithoutCancel(ctx), saved, text, id); err != nil {
		return "", err
	}
	return id, nil
}

// splitMessage splits a message into its header fields (folded lines kept
// in the value, with CRLF) and its body. Lines may end with CRLF or LF. A
// line that is neither a field nor a continuation starts the body.
func splitMessage(msg []byte) ([]policy.Header, []byte) {
	var hdrs []policy.Header
	rest := msg
	for len(rest) > 0 {
		line, next := rest, []byte(nil)
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, next = rest[:i], rest[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0:
			return hdrs, next
		case (line[0] == ' ' || line[0] == '\t') && len(hdrs) > 0:
			hdrs[len(hdrs)-1].Value += "\r\n" + string(line)
		default:
			name, value, ok := strings.Cut(string(line), ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				return hdrs, rest
			}
			hdrs = append(hdrs, policy.Header{Name: name, Value: strings.TrimPrefix(value, " ")})
		}
		rest = next
	}
	return hdrs, nil
}

// headerBlock returns a message's header fields: everything before the
// first empty line, with its line end.
func headerBlock(msg []byte) []byte {
	for i := 0; i < len(msg); {
		j := bytes.IndexByte(msg[i:], '\n')
		if j < 0 {
			return msg
		}
		line := bytes.TrimSuffix(msg[i:i+j], []byte("\r"))
		if len(line) == 0 {
			return msg[:i]
		}
		i += j + 1
	}
	return msg
}

// buryDamaged moves a message the spool cannot read (err, errCorrupt: not
// what the spool writes) to the dead queue, kept for the administrator.
func (s *Spool) buryDamaged(log hclog.Logger, j job, err error) {
	log.Error("damaged message moved to the dead queue", "error", err)
	if err := s.move(&message{id: j.id, queue: j.queue}, QueueDead); err != nil {
		log.Error("cannot move the message to the dead queue", "error", err)
	}
}
