package milter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	milter "github.com/d--j/go-milter"

	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/policy/object"
)

// localFailReply is the answer when a local delivery failed: the MTA keeps
// the message and tries again.
var localFailReply = object.Code{Code: 451, Enhanced: "4.3.0", Text: "Requested action aborted: local delivery failed, try again later"}

// EndOfMessage runs preq, postq and delivery on the message and answers:
// the rules' refusal, a discard (a deny after the queue, SEMANTICS §8: the
// client has been told nothing yet, but vSMTP would have accepted the
// message already, so it is dropped silently), a quarantine, or an accept.
// A delegate directive the rules reach hands the message to its filter
// while the MTA waits, and the rules resume with what comes back (see
// delegate). Before an accept it delivers the local recipients and
// replays the recorded modifications: header changes in order (the
// rules' and the filters'), the final sender, the net change of the
// envelope and the final body.
func (s *session) EndOfMessage(m milter.Modifier) (resp *milter.Response, err error) {
	defer s.endTransaction()
	defer s.recoverEOM(&resp)
	if s.tx.done {
		return milter.RespAccept, nil // answered at MAIL; the MTA should not be here
	}
	s.ensureConnected(m)
	s.tx.active = true
	var extra []any
	if s.plan.message {
		extra = append(extra, "size", s.tx.body.size)
	}
	if id := m.Get(macroQueueID); id != "" && id != s.ps.Tx.MessageID {
		extra = append(extra, "queue_id", id)
	}
	if s.tx.pending == nil {
		s.tx.pending = s.connPending
	}
	if p := s.tx.pending; p != nil {
		s.finish(outcomeOf(*p), *p, nil, extra...)
		return s.refusal(p.Reply), nil
	}

	ctx := s.srv.ctx
	ka := s.ka.start(m, s.srv.keepalive)
	defer ka.stop()
	d := s.ps.EndOfMessage(ctx, s.tx.headers, s.tx.body.kept)
	s.logScriptError(policy.PreQ, d)
	if d.Action == policy.ActionDelegate {
		d = s.delegate(ctx, d)
	}
	switch d.Action {
	case policy.ActionRefuse:
		s.finish(outcomeOf(d), d, nil, extra...)
		return s.refusal(d.Reply), nil
	case policy.ActionDiscard:
		s.finish("discard", d, nil, extra...)
		return milter.RespDiscard, nil
	}

	// A quarantined message keeps every recipient in the MTA's envelope
	// and is not delivered locally: released from the hold queue, the MTA
	// delivers it to all of them.
	quarantine := d.Action == policy.ActionQuarantine
	ops, err := s.modifications(m, !quarantine)
	if err != nil {
		od := s.onError(policy.PreQ, err)
		od.Verdict.Rule, od.Verdict.RuleStage = d.Verdict.Rule, d.Verdict.RuleStage
		if od.Action == policy.ActionRefuse {
			s.finish(outcomeOf(od), od, err, extra...)
			return s.refusal(od.Reply), nil
		}
		s.log.Warn("modifications the MTA cannot apply are skipped (on_error = accept)", "error", err)
	}
	if quarantine {
		ka.stop()
		reason := d.Quarantine
		ops = append(ops, func() error { return m.Quarantine(reason) })
		if err := run(ops); err != nil {
			return nil, s.writeFailed(d, err, extra)
		}
		s.finish("quarantine", d, nil, extra...)
		return milter.RespAccept, nil
	}

	if local := localDeliveries(s.ps.Tx); len(local) > 0 {
		extra = append(extra, "local", len(local))
		if err := s.deliver(ctx, local); err != nil {
			fd := d
			fd.Action, fd.Reply = policy.ActionRefuse, localFailReply
			s.finish("tempfail", fd, err, extra...)
			return s.refusal(localFailReply), nil
		}
	}
	ka.stop()
	if err := run(ops); err != nil {
		return nil, s.writeFailed(d, err, extra)
	}
	s.finish("accept", d, nil, extra...)
	return milter.RespAccept, nil
}

// writeFailed logs a modification the connection could not carry; the
// error closes it, and the MTA applies its default action.
func (s *session) writeFailed(d policy.Decision, err error, extra []any) error {
	err = fmt.Errorf("sending modifications to the MTA: %w", err)
	s.finish("tempfail", d, err, extra...)
	return err
}

// recoverEOM turns a panic at the end of the message into the on_error
// answer for the message.
func (s *session) recoverEOM(resp **milter.Response) {
	r := recover()
	if r == nil {
		return
	}
	d := s.panicked(policy.PreQ, r)
	s.tx.logged = false // the line written before the panic, if any, did not tell the answer
	s.finish(outcomeOf(d), d, d.Verdict.Err)
	*resp = milter.RespAccept
	if d.Action == policy.ActionRefuse {
		*resp = s.refusal(d.Reply)
	}
}

// run runs the modification writes in order.
func run(ops []func() error) error {
	for _, op := range ops {
		if err := op(); err != nil {
			return err
		}
	}
	return nil
}

// deleteRecipient asks the MTA to delete the recipient it spelled raw, as
// m.DeleteRecipient does, but writes the packet (SMFIR_DELRCPT, the
// address in angle brackets, NUL-terminated) itself: go-milter v0.10.2
// runs every address through milterutil.NewlineToSpace, whose
// transform.Chain allocates 4 KiB per call, 16% of the bytes allocated
// per session in the concurrent benchmark, where a message delivers two
// recipients locally. An address with a character that function would
// replace, which an MTA does not send, goes through go-milter. The caller
// has checked that the MTA allows deleting recipients.
func (s *session) deleteRecipient(m milter.Modifier, raw string) error {
	if s.conn == nil || strings.ContainsAny(raw, "\r\n\x00") || len(raw) > 60000 {
		return m.DeleteRecipient(raw)
	}
	if !(len(raw) > 1 && raw[0] == '<' && raw[len(raw)-1] == '>') { // go-milter's AddAngle
		raw = "<" + raw + ">"
	}
	n := len(raw) + 2 // code, address, NUL
	pkt := make([]byte, 0, 4+n)
	pkt = append(pkt, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), '-')
	pkt = append(pkt, raw...)
	pkt = append(pkt, 0)
	_, err := s.conn.Write(pkt)
	return err
}

// localDeliveries returns the recipients the rules deliver themselves.
func localDeliveries(tx *policy.Transaction) []policy.DeliveryChoice {
	var out []policy.DeliveryChoice
	for _, d := range tx.Deliveries() {
		if d.Transport != policy.Deliver {
			out = append(out, d)
		}
	}
	return out
}

// deliver hands the message to the Deliverer for the local recipients.
func (s *session) deliver(ctx context.Context, local []policy.DeliveryChoice) error {
	if s.srv.opts.Deliverer == nil {
		return errors.New("the rules deliver locally (maildir, mbox or forward) but no deliverer is configured")
	}
	msg, err := s.messageText()
	if err != nil {
		return err
	}
	if err := s.srv.opts.Deliverer.Deliver(ctx, msg, s.ps.Tx.MailFrom, local); err != nil {
		return fmt.Errorf("local delivery to %d recipient(s): %w", len(local), err)
	}
	return nil
}

// messageText renders the message as the rules left it, with the whole
// body even when the rules saw only its first MaxMessageSize bytes.
func (s *session) messageText() ([]byte, error) {
	tx := s.ps.Tx
	text := tx.AppendMessageText(s.text[:0])
	s.text = text
	if !s.tx.body.truncated() || bodyReplaced(tx) {
		return text, nil // a filter's body replaces the one the rules did not see whole
	}
	full, err := s.tx.body.full()
	if err != nil {
		return nil, err
	}
	head := text[:len(text)-len(tx.Body)]
	return append(head[:len(head):len(head)], full...), nil
}

// modifications checks the recorded modifications against what the
// connection negotiated and returns the writes that replay them: header
// changes in order, the final sender once, the net envelope change (the
// recipients the MTA accepted against the final envelope, without the
// recipients delivered locally unless keepLocal is false), and the final
// body once. Nothing is written yet. A modification the MTA cannot apply
// (not negotiated, an invalid header name) is an error; the writes of the
// others are still returned.
func (s *session) modifications(m milter.Modifier, excludeLocal bool) ([]func() error, error) {
	tx := s.ps.Tx
	acts := m.Actions()
	var (
		ops            []func() error
		errs           []error
		body           []byte
		replace, from  bool
		mta            = m.Get(macroMTAVersion)
		postfixInserts = strings.HasPrefix(mta, "Postfix")
		sendmail       = isSendmail(mta)
	)
	// need checks that the MTA allows a; what and name (an address, a
	// header name, or "") say what asked for it, in the error.
	need := func(a milter.OptAction, what, name string) bool {
		if acts&a == 0 {
			if name != "" {
				what = fmt.Sprintf("%s %q", what, name)
			}
			errs = append(errs, fmt.Errorf("%s: the MTA did not allow it in the negotiation", what))
			return false
		}
		return true
	}
	for _, mod := range tx.Modifications() {
		mod := mod
		if mod.Kind <= policy.DeleteHeader && !validHeaderName(mod.Name) {
			errs = append(errs, fmt.Errorf("%s %q: invalid header name", mod.Kind, mod.Name))
			continue
		}
		what := mod.Kind.String()
		switch mod.Kind {
		case policy.AddHeader:
			if need(milter.OptAddHeader, what, mod.Name) {
				if sendmail {
					// Sendmail puts an added field before the first one of
					// the same name, or in place of a default field it has
					// not sent yet (Date:, Message-Id:...): an insert past
					// the end appends it, as the rules asked.
					ops = append(ops, func() error { return m.InsertHeader(sendmailEnd, mod.Name, mod.Value) })
				} else {
					ops = append(ops, func() error { return m.AddHeader(mod.Name, mod.Value) })
				}
			}
		case policy.InsertHeader:
			if need(milter.OptAddHeader, what, mod.Name) {
				i := mod.Index
				// Postfix hides its own Received: header, the first of the
				// queue file, from milters, and counts it when inserting
				// (but not when changing or deleting). Shifted by one, an
				// insert lands where the rules put it, below that header,
				// and the header list the rules saw stays the queue file's
				// minus its first field, which Postfix's index counting
				// assumes.
				// Sendmail counts fields it does not send to milters too
				// (defaults, deleted fields), and says there is no way to
				// insert at an exact place but the top and the end: a field
				// inserted below the top (a renamed one) may land higher
				// than the rules put it.
				if postfixInserts {
					i++
				}
				ops = append(ops, func() error { return m.InsertHeader(i, mod.Name, mod.Value) })
			}
		case policy.ChangeHeader:
			if need(milter.OptChangeHeader, what, mod.Name) {
				v := mod.Value
				if v == "" {
					v = " " // an empty value deletes the field in the protocol
				}
				ops = append(ops, func() error { return m.ChangeHeader(mod.Index, mod.Name, v) })
			}
		case policy.DeleteHeader:
			if need(milter.OptChangeHeader, what, mod.Name) {
				ops = append(ops, func() error { return m.ChangeHeader(mod.Index, mod.Name, "") })
			}
		case policy.ChangeFrom:
			from = true
		case policy.ReplaceBody:
			body, replace = mod.Body, true
		}
	}
	if from && need(milter.OptChangeFrom, "change_from", "") {
		if m.Version() < 6 {
			errs = append(errs, errors.New("change_from: needs milter protocol version 6"))
		} else {
			sender := tx.MailFrom.String()
			ops = append(ops, func() error { return m.ChangeFrom(sender, "") })
		}
	}

	// The envelope: F is what the rules want the MTA to deliver, O what
	// the MTA has. Replaying the additions and removals one by one would
	// send an add and a delete for a recipient that was rewritten back.
	var final []policy.MailAddr
	for _, d := range tx.Deliveries() {
		if !excludeLocal || d.Transport == policy.Deliver {
			final = append(final, d.Rcpt)
		}
	}
	for _, o := range s.tx.rcpts {
		if !containsAddr(final, o.addr) && need(milter.OptRemoveRcpt, "delete_rcpt", o.raw) {
			raw := o.raw
			ops = append(ops, func() error { return s.deleteRecipient(m, raw) })
		}
	}
	for _, f := range final {
		if containsRcpt(s.tx.rcpts, f) {
			continue
		}
		if addr := f.String(); need(milter.OptAddRcpt, "add_rcpt", addr) {
			ops = append(ops, func() error { return m.AddRecipient(addr, "") })
		}
	}
	if replace && need(milter.OptChangeBody, "replace_body", "") {
		ops = append(ops, func() error { return m.ReplaceBody(bytes.NewReader(body)) })
	}
	return ops, errors.Join(errs...)
}

func containsAddr(list []policy.MailAddr, a policy.MailAddr) bool {
	for _, x := range list {
		if x.Same(a) {
			return true
		}
	}
	return false
}

func containsRcpt(list []rcptEntry, a policy.MailAddr) bool {
	for _, x := range list {
		if x.addr.Same(a) {
			return true
		}
	}
	return false
}

// sendmailEnd is an insert index past any Sendmail header list: such an
// insert appends. Sendmail reads the index as a signed 32-bit number.
const sendmailEnd = math.MaxInt32

// isSendmail reports whether v, the MTA's {v} macro, is a Sendmail version
// ("8.18.1"; Postfix's reads "Postfix 3.7.11").
func isSendmail(v string) bool {
	major, rest, ok := strings.Cut(v, ".")
	if !ok || major != "8" {
		return false
	}
	minor, _, _ := strings.Cut(rest, ".")
	if minor == "" {
		return false
	}
	for _, c := range minor {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validHeaderName reports whether name can be sent as a header field name
// (printable ASCII, no space, no colon), as go-milter requires.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// bodyBuffer keeps the body for the rules: up to max bytes in memory
// (max 0: all). Once the body outgrows max, the whole body goes to a
// temporary file as well, for local deliveries, which must get all of it.
type bodyBuffer struct {
	max   int64
	kept  []byte // what the rules see
	size  int64  // the body's whole size
	spool *os.File
	err   error // a spooling failure: the whole body is lost to local delivery
}

// Write adds a body chunk.
func (b *bodyBuffer) Write(p []byte) {
	b.size += int64(len(p))
	room := len(p)
	if b.max > 0 {
		room = int(min(int64(len(p)), max(b.max-int64(len(b.kept)), 0)))
	}
	if b.spool == nil && b.err == nil && room < len(p) {
		f, err := os.CreateTemp("", "vsl-milter-body-*")
		if err == nil {
			b.spool = f
			_, err = f.Write(b.kept)
		}
		if err != nil {
			b.err = fmt.Errorf("spooling a body larger than %d bytes: %w", b.max, err)
		}
	}
	b.kept = append(b.kept, p[:room]...)
	if b.spool != nil && b.err == nil {
		if _, err := b.spool.Write(p); err != nil {
			b.err = fmt.Errorf("spooling a body larger than %d bytes: %w", b.max, err)
		}
	}
}

// truncated reports whether the rules see only part of the body.
func (b *bodyBuffer) truncated() bool { return int64(len(b.kept)) < b.size }

// full returns the whole body.
func (b *bodyBuffer) full() ([]byte, error) {
	if !b.truncated() {
		return b.kept, nil
	}
	if b.err != nil {
		return nil, b.err
	}
	data := make([]byte, b.size)
	if _, err := b.spool.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("reading the spooled body: %w", err)
	}
	return data, nil
}

// reset empties the buffer for the next transaction and removes the
// spool file.
func (b *bodyBuffer) reset() error {
	b.kept, b.size, b.err = b.kept[:0], 0, nil
	if cap(b.kept) > keptBuffer {
		b.kept = nil
	}
	if b.spool == nil {
		return nil
	}
	name := b.spool.Name()
	cerr := b.spool.Close()
	b.spool = nil
	return errors.Join(cerr, os.Remove(name))
}
