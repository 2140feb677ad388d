package milter

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	milter "github.com/d--j/go-milter"
	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/policy/object"
)

// errShuttingDown refuses a connection the MTA reuses (QUIT_NC) while the
// server shuts down: go-milter then closes it.
var errShuttingDown = errors.New("milter: server is shutting down")

// session is the milter.Milter of one MTA connection: it drives a
// policy.Session through the callbacks and turns its decisions into milter
// answers. go-milter calls it from one goroutine.
type session struct {
	srv  *Server
	plan *plan
	ps   *policy.Session
	log  hclog.Logger
	conn *trackedConn // its read buffers go back to the server at Cleanup

	started   bool // NewConnection was called once
	connected bool // the connect stage ran
	client    string
	// connPending is a refusal of the connection decided where it could
	// not be answered (a one-way connect or helo event): every
	// transaction gets it at its first answered event.
	connPending *policy.Decision
	tx          txState
	ka          keepalive // progress notifications during answered callbacks
	text        []byte    // the message text for local deliveries, reused
}

// txState is the milter side of the transaction in progress.
type txState struct {
	active  bool // an event of the transaction arrived
	done    bool // the transaction was answered early (accepted or refused at MAIL)
	logged  bool // its transaction line was written
	from    string
	rcpts   []rcptEntry // the recipients the MTA accepted: passed to Rcpt and not refused
	refused *policy.Decision
	headers []policy.Header
	body    bodyBuffer
	// pending is a refusal decided where it could not be answered (a
	// one-way event, a panic at RCPT): the end of message answers it.
	pending *policy.Decision
}

// rcptEntry is a recipient as parsed and as the MTA spelled it (deleting
// a recipient names it the MTA's way).
type rcptEntry struct {
	addr policy.MailAddr
	raw  string
}

// newSession is go-milter's factory for a negotiated connection.
func (s *Server) newSession(p *plan, tc *trackedConn) milter.Milter {
	growStack(tc.outHdrN) // on the goroutine go-milter serves the connection on
	s.sessionStarted()
	return &session{srv: s, plan: p, log: s.log, conn: tc}
}

// sessionStack is the frame growStack takes, which makes the stack 32 KiB.
// The Doe family's rules run about 8 KiB deep (the vSL interpreter nests Go
// calls as deeply as the script nests expressions), but the GC halves the
// stack of a goroutine that uses less than a quarter of it, as a session
// does while it waits for the MTA: halved, 32 KiB still holds the rules,
// 16 KiB does not (measured: a pad of 8 KiB left half the growths).
const sessionStack = 16 << 10

// growStack makes the calling goroutine's stack large enough for rules
// while the goroutine is still shallow. go-milter starts a goroutine per
// connection with a small stack, which otherwise doubles two or three
// times in the first rule run, each time copying and re-walking every
// frame of the interpreter: 4–5% of the CPU of the concurrent benchmark,
// against about 1% for one growth here. i only defeats constant folding.
//
//go:noinline
func growStack(i int) byte {
	var pad [sessionStack]byte
	pad[i%len(pad)] = byte(i)
	return pad[(i*7)%len(pad)]
}

var _ milter.Milter = (*session)(nil)

// NewConnection starts an SMTP connection: at the milter connection's
// start, and again when the MTA reuses it (QUIT_NC) for another SMTP
// connection, with the same rules.
func (s *session) NewConnection(m milter.Modifier) (err error) {
	defer s.recoverQuiet("new connection")
	if s.started && s.srv.shuttingDown() {
		return errShuttingDown
	}
	s.started = true
	s.endTransaction()
	s.ps = policy.NewSession(s.plan.rules, policy.SessionOptions{
		OnError:  s.srv.opts.OnError,
		Deadline: s.srv.opts.Deadline,
		RunOptions: policy.RunOptions{
			Observer: s.srv.opts.Observer,
			Log:      s.srv.scriptLog,
			AppDir:   s.srv.opts.AppDir,
		},
	})
	s.connected, s.client, s.log, s.connPending = false, "", s.srv.log, nil
	s.tx.body.max = s.srv.opts.MaxMessageSize
	if s.tx.body.kept == nil && s.text == nil && s.conn != nil {
		s.tx.body.kept, s.text = s.conn.messageBuffers()
	}
	return nil
}

// Connect runs the connect stage.
func (s *session) Connect(host string, family string, port uint16, addr string, m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recoverStage(m, policy.Connect, &resp)
	var client netip.AddrPort
	if family == "tcp4" || family == "tcp6" {
		if a, err := netip.ParseAddr(addr); err == nil {
			client = netip.AddrPortFrom(a, port)
		}
	}
	return s.answer(m, policy.Connect, s.connect(m, client, host))
}

// connect fills the connection's data and runs the connect stage.
func (s *session) connect(m milter.Modifier, client netip.AddrPort, host string) policy.Decision {
	s.connected = true
	s.client = client.Addr().String()
	if !client.IsValid() {
		s.client = host
	}
	s.log = s.srv.log.With("client", s.client)
	name := m.Get(macroServerName)
	if name == "" {
		name = s.srv.opts.ServerName
	}
	server := macroAddrPort(m.Get(macroDaemonAddr), m.Get(macroDaemonPort))
	ctx, ka := s.begin(m, policy.Connect)
	defer ka.stop()
	return s.ps.Connect(ctx, client, server, name, m.Get(macroTLSVersion) != "")
}

// ensureConnected runs the connect stage from the macros when the connect
// event was negotiated away, before the first event that came instead.
func (s *session) ensureConnected(m milter.Modifier) {
	if s.connected {
		return
	}
	d := s.connect(m, macroAddrPort(m.Get(macroClientAddr), m.Get(macroClientPort)), "")
	s.logScriptError(policy.Connect, d)
	s.postpone(policy.Connect, d)
}

// macroAddrPort reads an address macro ({client_addr}, {daemon_addr}) and
// its port. Postfix writes IPv6 addresses as "IPv6:2001:db8::1".
func macroAddrPort(addr, port string) netip.AddrPort {
	a, err := netip.ParseAddr(strings.TrimPrefix(strings.Trim(addr, "[]"), "IPv6:"))
	if err != nil {
		return netip.AddrPort{}
	}
	p, _ := strconv.ParseUint(port, 10, 16)
	return netip.AddrPortFrom(a, uint16(p))
}

// Helo runs the helo stage. After STARTTLS the MTA sends HELO again: the
// stage runs again, and TLS shows in is_secured() from then on.
func (s *session) Helo(name string, m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recoverStage(m, policy.Helo, &resp)
	s.ensureConnected(m)
	s.noteTLS(m)
	ctx, ka := s.begin(m, policy.Helo)
	d := s.ps.Helo(ctx, name)
	ka.stop()
	return s.answer(m, policy.Helo, d)
}

// noteTLS records TLS the MTA reports after the connection started.
func (s *session) noteTLS(m milter.Modifier) {
	if m.Get(macroTLSVersion) != "" {
		s.ps.Tx.Secured = true
	}
}

// MailFrom starts a transaction: the authenticate stage when the MTA
// reports an authenticated client ({auth_authen}), then the mail stage.
// ESMTP parameters are ignored.
func (s *session) MailFrom(from string, _ string, m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recoverStage(m, policy.Mail, &resp)
	s.endTransaction()
	s.ensureConnected(m)
	s.noteTLS(m)
	s.tx.active, s.tx.from = true, from
	if s.connPending != nil {
		s.tx.pending = s.connPending
	}
	if s.tx.pending != nil && s.plan.replies(policy.Mail) {
		return s.answer(m, policy.Mail, *s.tx.pending)
	}
	ctx, ka := s.begin(m, policy.Mail)
	defer ka.stop()
	if authid := m.Get(macroAuthAuthen); authid != "" {
		d := s.ps.Authenticate(ctx, policy.Auth{Type: m.Get(macroAuthType), AuthID: authid})
		if d.Action != policy.ActionContinue {
			ka.stop()
			return s.answer(m, policy.Authenticate, d)
		}
	}
	d := s.ps.Mail(ctx, policy.ParseMailAddr(from), m.Get(macroQueueID))
	ka.stop()
	return s.answer(m, policy.Mail, d)
}

// RcptTo runs the rcpt stage for one recipient: a refusal refuses only
// that recipient. ESMTP parameters are ignored.
func (s *session) RcptTo(rcpt string, _ string, m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recoverStage(m, policy.Rcpt, &resp)
	if s.tx.done {
		return milter.RespContinue, nil
	}
	s.ensureConnected(m)
	s.tx.active = true
	addr := policy.ParseMailAddr(rcpt)
	ctx, ka := s.begin(m, policy.Rcpt)
	d := s.ps.Rcpt(ctx, addr)
	ka.stop()
	if d.Action == policy.ActionContinue {
		s.tx.rcpts = append(s.tx.rcpts, rcptEntry{addr: addr, raw: rcpt})
	}
	return s.answer(m, policy.Rcpt, d)
}

// Data, negotiated only when the delivery stage cannot read the message
// (plan.data), runs the delivery stage once the envelope is complete. A
// message that then needs nothing more (no local delivery, no
// modification, no quarantine, no refusal) is accepted, so that the MTA
// sends neither its header nor its body nor its end: the client gets the
// same 250 as from an accept at the end of the message. Any other decision
// is answered at the end of the message, where SEMANTICS §8 answers the
// delivery stage, without running the stage again.
func (s *session) Data(m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recoverData(&resp)
	if s.tx.done || !s.plan.data {
		return milter.RespContinue, nil
	}
	s.ensureConnected(m)
	s.tx.active = true
	if s.tx.pending != nil || s.connPending != nil {
		return milter.RespContinue, nil // a refusal the end of the message answers
	}
	ctx, ka := s.begin(m, policy.Delivery)
	d, ok := s.ps.DeliveryBeforeMessage(ctx)
	ka.stop()
	if ok && d.Action == policy.ActionContinue && s.nothingPending() {
		s.logScriptError(policy.Delivery, d)
		var extra []any
		if id := m.Get(macroQueueID); id != "" && id != s.ps.Tx.MessageID {
			extra = append(extra, "queue_id", id)
		}
		s.finish("accept", d, nil, extra...)
		s.endTransaction()
		s.tx.done = true
		return milter.RespAccept, nil
	}
	return milter.RespContinue, nil
}

// Header keeps one header field for the rules. Postfix and Sendmail both
// drop the one space after the colon (SMFIP_HDR_LEADSPC is not asked for)
// and separate the lines of a folded field with LF; the value is kept
// without that space, as policy.Header wants it, with CRLF line ends.
func (s *session) Header(name string, value string, m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recoverData(&resp)
	if s.tx.done {
		return milter.RespContinue, nil
	}
	s.tx.active = true
	s.tx.headers = append(s.tx.headers, policy.Header{Name: name, Value: crlf(value)})
	return milter.RespContinue, nil
}

// crlf turns bare LF line ends into CRLF.
func crlf(v string) string {
	if !strings.Contains(v, "\n") {
		return v
	}
	v = strings.ReplaceAll(v, "\r\n", "\n")
	return strings.ReplaceAll(v, "\n", "\r\n")
}

// Headers (end of header) is never negotiated.
func (s *session) Headers(m milter.Modifier) (*milter.Response, error) {
	return milter.RespContinue, nil
}

// BodyChunk keeps the body for the rules, up to Options.MaxMessageSize.
func (s *session) BodyChunk(chunk []byte, m milter.Modifier) (resp *milter.Response, err error) {
	defer s.recoverData(&resp)
	if s.tx.done {
		return milter.RespContinue, nil
	}
	s.tx.active = true
	s.tx.body.Write(chunk)
	return milter.RespContinue, nil
}

// Unknown is never negotiated.
func (s *session) Unknown(cmd string, m milter.Modifier) (*milter.Response, error) {
	return milter.RespContinue, nil
}

// Abort ends the transaction in progress (RSET, a refused transaction, a
// client gone). A transaction whose every recipient the rules refused is
// logged and counted with the last refusal.
func (s *session) Abort(m milter.Modifier) error {
	defer s.recoverQuiet("abort")
	if s.tx.active && !s.tx.logged && len(s.tx.rcpts) == 0 && s.tx.refused != nil {
		d := *s.tx.refused
		s.finish(outcomeOf(d), d, nil)
	}
	s.endTransaction()
	return nil
}

// Cleanup releases the session when the MTA connection is gone.
func (s *session) Cleanup(m milter.Modifier) {
	defer s.srv.sessionEnded()
	defer s.recoverQuiet("cleanup")
	s.endTransaction()
	if s.conn != nil {
		s.conn.release(s.tx.body.kept, s.text)
		s.tx.body.kept, s.text = nil, nil
	}
}

// endTransaction forgets the transaction: the milter's state, the rule
// session's transaction, a spooled body.
func (s *session) endTransaction() {
	if !s.tx.active && !s.tx.done {
		return
	}
	if err := s.tx.body.reset(); err != nil {
		s.log.Warn("removing the spooled body failed", "error", err)
	}
	s.tx = txState{headers: s.tx.headers[:0], rcpts: s.tx.rcpts[:0], body: s.tx.body}
	if cap(s.text) > keptBuffer {
		s.text = nil
	}
	if s.ps != nil {
		s.ps.Tx.Reset()
	}
}

// begin starts a stage run: its context, and progress notifications to
// the MTA while it runs, when the MTA waits for the answer.
func (s *session) begin(m milter.Modifier, st policy.Stage) (context.Context, *keepalive) {
	if !s.plan.replies(st) {
		return s.srv.ctx, nil
	}
	return s.srv.ctx, s.ka.start(m, s.srv.keepalive)
}

// answer turns a stage's decision into the milter answer (SEMANTICS §8).
func (s *session) answer(m milter.Modifier, st policy.Stage, d policy.Decision) (*milter.Response, error) {
	s.logScriptError(st, d)
	if !s.plan.replies(st) {
		s.postpone(st, d)
		return milter.RespContinue, nil
	}
	switch d.Action {
	case policy.ActionRefuse:
		if st == policy.Rcpt {
			refused := d // a copy: d itself stays on the stack in the other cases
			s.tx.refused = &refused
			s.log.Debug("recipient refused", "reply", replyText(d.Reply), "rule", d.Verdict.Rule)
		} else {
			s.finish(outcomeOf(d), d, nil)
			s.endTransaction()
			s.tx.done = st >= policy.Authenticate
		}
		return s.refusal(d.Reply), nil
	case policy.ActionContinue:
		// A finished faccept lets the MTA skip the rest of the transaction
		// (at connect or helo: of the connection), unless something is
		// still to be applied at the end of the message.
		if st != policy.Rcpt && d.Final && d.Verdict.Status != nil && d.Verdict.Status.Kind == policy.Faccept && s.nothingPending() {
			s.finish("accept", d, nil)
			s.endTransaction()
			s.tx.done = st >= policy.Authenticate
			return milter.RespAccept, nil
		}
	}
	return milter.RespContinue, nil
}

// postpone keeps a refusal decided where it cannot be answered (a one-way
// event) for the next event that can: a refusal at connect or helo for
// every transaction, a later one for the end of the message.
func (s *session) postpone(st policy.Stage, d policy.Decision) {
	switch {
	case d.Action != policy.ActionRefuse:
	case st <= policy.Helo:
		if s.connPending == nil {
			p := d // copies, so that d escapes only when kept
			s.connPending = &p
		}
	case s.tx.pending == nil:
		p := d
		s.tx.pending = &p
	}
}

// nothingPending reports whether the end of message would have nothing to
// do: no modification, no local delivery, no pending refusal, and no header
// change a rule made before the message arrived.
func (s *session) nothingPending() bool {
	return s.tx.pending == nil && s.connPending == nil && !s.ps.Tx.Pending()
}

// refusal is the milter answer refusing with reply (4xx: tempfail, 5xx:
// reject), with the rules' code and text.
func (s *session) refusal(reply object.Code) *milter.Response {
	code, enhanced, text := reply.Code, reply.Enhanced, reply.Text
	if code < 400 || code > 599 {
		s.log.Warn("a refusal has a reply code that is not 4xx or 5xx; answering 550 instead", "reply", replyText(reply))
		code, enhanced = 550, ""
	}
	if enhanced != "" {
		// Postfix refuses a reply whose enhanced code's class is not the
		// reply code's (451 5.7.1) and answers its default instead.
		enhanced = strconv.Itoa(code/100) + strings.TrimLeft(enhanced, "0123456789")
		text = enhanced + " " + text
	}
	if strings.TrimSpace(text) == "" {
		text = "Command rejected"
		if code < 500 {
			text = "Try again later"
		}
	}
	resp, err := milter.RejectWithCodeAndReason(uint16(code), text)
	if err != nil {
		s.log.Warn("the refusal's reply cannot be sent; answering a plain refusal", "reply", replyText(reply), "error", err)
		if code < 500 {
			return milter.RespTempFail
		}
		return milter.RespReject
	}
	return resp
}

// onError is the decision of a fault outside the rules (a panic): what
// Options.OnError says, as for a script error.
func (s *session) onError(st policy.Stage, err error) policy.Decision {
	d := policy.Decision{Verdict: policy.Verdict{Stage: st, Err: err}}
	switch s.srv.opts.OnError {
	case policy.OnErrorAccept:
	case policy.OnErrorDeny:
		d.Action, d.Reply = policy.ActionRefuse, object.Code{Code: 554, Text: "permanent problems with the remote server"}
	default:
		d.Action, d.Reply = policy.ActionRefuse, object.Code{Code: 451, Enhanced: "4.7.1", Text: "Requested action aborted: local error in processing"}
	}
	return d
}

// recoverStage turns a panic in the connect, helo, envfrom or envrcpt callback
// into the on_error answer for the message: answered at once where the
// event waits for an answer (at RCPT for that recipient, and for the
// message at its end), else at the end of the message.
func (s *session) recoverStage(m milter.Modifier, st policy.Stage, resp **milter.Response) {
	r := recover()
	if r == nil {
		return
	}
	d := s.panicked(st, r)
	*resp = milter.RespContinue
	switch {
	case !s.plan.replies(st):
		s.postpone(st, d)
	case st == policy.Rcpt:
		// The recipient is answered now, the message at its end.
		s.postpone(st, d)
		if d.Action == policy.ActionRefuse {
			*resp = s.refusal(d.Reply)
		}
	default:
		func() {
			defer func() {
				if r := recover(); r != nil {
					s.log.Error("internal error while answering an internal error", "error", fmt.Sprint(r))
					*resp = milter.RespTempFail
				}
			}()
			*resp, _ = s.answer(m, st, d)
		}()
	}
}

// recoverData turns a panic in the header or body callback into the
// on_error answer at the end of the message.
func (s *session) recoverData(resp **milter.Response) {
	r := recover()
	if r == nil {
		return
	}
	d := s.panicked(policy.PreQ, r)
	if d.Action == policy.ActionRefuse && s.tx.pending == nil {
		s.tx.pending = &d
	}
	*resp = milter.RespContinue
}

// panicked logs a recovered panic and returns the on_error decision.
func (s *session) panicked(st policy.Stage, r any) policy.Decision {
	err := fmt.Errorf("panic in the %s callback: %v", st, r)
	s.log.Error("internal error; answering on_error", "stage", st, "error", err, "on_error", s.srv.opts.OnError, "stack", string(debug.Stack()))
	return s.onError(st, err)
}

// recoverQuiet logs a panic in a callback that has no answer.
func (s *session) recoverQuiet(where string) {
	if r := recover(); r != nil {
		s.log.Error("internal error", "in", where, "error", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}

// logScriptError logs a script error where it happens: the transaction
// line may be decided elsewhere (an error at RCPT refuses a recipient).
func (s *session) logScriptError(st policy.Stage, d policy.Decision) {
	if d.Verdict.Err == nil || d.Verdict.Skipped {
		return
	}
	s.log.Warn("rule error", "stage", st, "error", d.Verdict.Err.Error(), "on_error", s.srv.opts.OnError)
}

// outcomeOf names a decision's outcome for logs and metrics.
func outcomeOf(d policy.Decision) string {
	switch d.Action {
	case policy.ActionRefuse:
		if d.Reply.Code >= 400 && d.Reply.Code < 500 {
			return "tempfail"
		}
		return "reject"
	case policy.ActionDiscard:
		return "discard"
	case policy.ActionQuarantine:
		return "quarantine"
	}
	return "accept"
}

// replyText renders a reply for logs.
func replyText(c object.Code) string {
	parts := make([]string, 0, 3)
	parts = append(parts, strconv.Itoa(c.Code))
	if c.Enhanced != "" {
		parts = append(parts, c.Enhanced)
	}
	if c.Text != "" {
		parts = append(parts, c.Text)
	}
	return strings.Join(parts, " ")
}

// finish writes the transaction's line and counts it.
func (s *session) finish(outcome string, d policy.Decision, err error, extra ...any) {
	if s.tx.logged {
		return
	}
	s.tx.logged = true
	if s.srv.opts.Metrics != nil {
		s.srv.opts.Metrics.Transaction(outcome)
	}
	log := s.log
	if !log.IsInfo() && err == nil && d.Verdict.Err == nil {
		return
	}
	v := d.Verdict
	args := []any{"outcome", outcome}
	if v.Rule != "" {
		args = append(args, "stage", v.RuleStage.String(), "rule", v.Rule, "at", v.Pos.String())
	} else if v.Err != nil {
		args = append(args, "stage", v.Stage.String())
	}
	if id := s.ps.Tx.MessageID; id != "" {
		args = append(args, "id", id)
	}
	if s.tx.active && s.plan.mail != cbOff {
		args = append(args, "from", "<"+s.tx.from+">")
	}
	if s.tx.active && s.plan.rcpt != cbOff {
		args = append(args, "rcpts", len(s.tx.rcpts))
	}
	if d.Action == policy.ActionRefuse {
		args = append(args, "reply", replyText(d.Reply))
	}
	if d.Quarantine != "" {
		args = append(args, "quarantine", d.Quarantine)
	}
	args = append(args, extra...)
	switch {
	case err != nil:
		log.Error("transaction", append(args, "error", err.Error())...)
	case v.Err != nil:
		log.Warn("transaction", append(args, "error", v.Err.Error())...)
	default:
		log.Info("transaction", args...)
	}
}

// keepalive sends progress notifications to the MTA while a callback runs
// longer than its interval, so that the MTA's timeout does not fire on a
// slow rule or delivery. stop must be called before the callback writes
// anything else to the MTA. A session keeps one for all its callbacks: its
// timer is made once and re-armed, rather than a timer allocated for each
// callback.
type keepalive struct {
	mu      sync.Mutex
	stopped bool
	every   time.Duration
	since   time.Time // when the running callback started
	m       milter.Modifier
	t       *time.Timer
}

// start arms k for a callback that answers through m; it returns nil (no
// notifications) when every is 0 or the MTA's protocol predates them.
func (k *keepalive) start(m milter.Modifier, every time.Duration) *keepalive {
	if every <= 0 || m.Version() < 6 {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped, k.every, k.since, k.m = false, every, time.Now(), m
	if k.t == nil {
		k.t = time.AfterFunc(every, k.tick)
	} else {
		k.t.Reset(every)
	}
	return k
}

// tick notifies the MTA and re-arms the timer. A tick of an earlier
// callback that fired as it stopped may find the next one running: it
// waits for that one's interval to pass.
func (k *keepalive) tick() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	if wait := k.every - time.Since(k.since); wait > 0 {
		k.t.Reset(wait)
		return
	}
	if err := k.m.Progress(); err != nil {
		return // the connection is gone; the callback will find out
	}
	k.t.Reset(k.every)
}

// stop ends the notifications; none is being written when it returns.
// It may be called more than once, and on nil.
func (k *keepalive) stop() {
	if k == nil {
		return
	}
	k.mu.Lock()
	k.stopped = true
	k.t.Stop()
	k.m = nil
	k.mu.Unlock()
}
