package smtpd

import (
	"context"
	"crypto/tls"
	"strconv"
	"strings"

	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/policy/object"
)

// dispatch runs one command line.
func (c *conn) dispatch(line string) {
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	arg = strings.TrimSpace(arg)
	if c.refusedAtConnect {
		switch verb {
		case "QUIT", "NOOP", "RSET", "HELP":
		default:
			c.reply(c.srv.replies.get(rBadSequence))
			return
		}
	}
	switch verb {
	case "HELO":
		c.hello(arg, false)
	case "EHLO":
		c.hello(arg, true)
	case "STARTTLS":
		c.startTLS(arg)
	case "AUTH":
		c.auth(arg)
	case "MAIL":
		c.mail(arg)
	case "RCPT":
		c.rcpt(arg)
	case "DATA":
		c.data(arg)
	case "RSET":
		c.endTransaction()
		c.reply(c.srv.replies.get(rOk))
	case "NOOP":
		c.reply(c.srv.replies.get(rOk))
	case "HELP":
		c.reply(c.srv.replies.get(rHelp))
	case "QUIT":
		c.reply(c.srv.replies.get(rClosing))
		c.quit = true
	case "VRFY", "EXPN", "TURN", "ETRN":
		c.reply(c.srv.replies.get(rUnimplemented))
	case "BDAT":
		// CHUNKING is not offered: the chunk that follows cannot be told
		// from commands, so the session cannot go on safely.
		c.reply(c.srv.replies.get(rUnimplemented))
		c.quit = true
	default:
		c.reply(c.srv.replies.get(rUnrecognizedCommand))
	}
}

// hello runs HELO and EHLO: the helo stage, then the greeting or the
// extension list. A transaction in progress is ended first (RFC 5321
// §4.1.4).
func (c *conn) hello(arg string, extended bool) {
	if extended && c.srv.cfg.Server.SMTP.DisableEHLO {
		c.reply(c.srv.replies.get(rUnimplemented))
		return
	}
	fields := strings.Fields(arg)
	if len(fields) == 0 {
		c.reply(c.srv.replies.get(rSyntaxErrorParams))
		return
	}
	c.endTransaction()
	d := c.ps.Helo(c.srv.ctx, fields[0])
	if d.Action == policy.ActionRefuse {
		c.refuse(policy.Helo, d)
		return
	}
	c.helo, c.esmtp = true, extended
	if r, ok := c.custom(d); ok {
		c.reply(r)
		return
	}
	if !extended {
		c.reply(c.srv.replies.get(rHelo))
		return
	}
	c.reply(c.ehloReply())
}

// ehloReply is the EHLO reply: EhloSecured or EhloPain when configured,
// else the domain and the extensions offered on this connection.
func (c *conn) ehloReply() object.Code {
	id := rEhloPain
	if c.secured {
		id = rEhloSecured
	}
	if c.srv.replies.set[id] {
		return c.srv.replies.get(id)
	}
	lines := []string{
		c.srv.cfg.Server.Domain,
		"PIPELINING",
		"SIZE " + strconv.FormatInt(c.srv.cfg.Server.MessageSizeLimit, 10),
		"8BITMIME",
		"SMTPUTF8",
	}
	if c.srv.tls != nil && !c.secured {
		lines = append(lines, "STARTTLS")
	}
	if c.authOffered() {
		lines = append(lines, "AUTH "+strings.Join(c.srv.mechs, " "))
	}
	return object.Code{Code: 250, Text: strings.Join(lines, "\n")}
}

// authOffered reports whether AUTH is offered now: mechanisms are
// configured, and the connection is encrypted unless
// enable_dangerous_mechanism_in_clair.
func (c *conn) authOffered() bool {
	a := c.srv.cfg.Server.SMTP.Auth
	return len(c.srv.mechs) > 0 && !c.authed && (c.secured || a.EnableDangerousMechanismInClair)
}

// startTLS runs STARTTLS (RFC 3207): after the handshake the session
// starts over, without HELO nor authentication; the connect stage does
// not run again, and is_secured() is true from then on.
func (c *conn) startTLS(arg string) {
	switch {
	case arg != "":
		c.reply(c.srv.replies.get(rSyntaxErrorParams))
		return
	case c.secured:
		c.reply(c.srv.replies.get(rAlreadyUnderTLS))
		return
	case c.srv.tls == nil:
		c.reply(c.srv.replies.get(rTLSNotAvailable))
		return
	case c.tx.active:
		c.reply(c.srv.replies.get(rBadSequence))
		return
	}
	c.reply(c.srv.replies.get(rTLSGoAhead))
	if c.flush() != nil {
		return
	}
	if n := c.r.Buffered(); n > 0 {
		c.log.Warn("dropping clear-text input sent after STARTTLS", "bytes", n)
	}
	tc := tls.Server(c.raw, c.srv.tls)
	ctx, cancel := context.WithTimeout(c.srv.ctx, c.srv.cfg.Server.TLS.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.log.Debug("STARTTLS handshake failed", "error", err)
		c.quit = true
		return
	}
	c.useTLS(tc)
	c.helo, c.authed = false, false
	tx := c.ps.Tx
	tx.Secured, tx.Helo, tx.Auth = true, "", nil
}

// mail runs MAIL FROM: the checks of [server.tls] and [server.smtp.auth],
// the parameters, then the mail stage.
func (c *conn) mail(arg string) {
	auth := c.srv.cfg.Server.SMTP.Auth
	switch {
	case !c.helo || c.tx.active:
		c.reply(c.srv.replies.get(rBadSequence))
		return
	case c.srv.encrypt && !c.secured:
		c.reply(c.srv.replies.get(rTLSRequired))
		return
	case auth != nil && auth.MustBeAuthenticated && !c.authed:
		c.reply(c.srv.replies.get(rAuthRequired))
		return
	}
	from, params, ok := parsePath(arg, "FROM:")
	if !ok {
		c.reply(c.srv.replies.get(rSyntaxErrorParams))
		return
	}
	size, id, ok := c.checkMailParams(params)
	if !ok {
		c.reply(c.srv.replies.get(id))
		return
	}
	d := c.ps.Mail(c.srv.ctx, from, "")
	if d.Action == policy.ActionRefuse {
		c.refuse(policy.Mail, d, "id", c.ps.Tx.MessageID, "from", "<"+from.String()+">")
		c.ps.Tx.Reset()
		return
	}
	c.tx = txState{active: true, from: from, size: size}
	c.replyContinue(d, rOk)
}

// checkMailParams checks the ESMTP parameters of MAIL FROM: SIZE (against
// message_size_limit), BODY, SMTPUTF8 and AUTH (accepted and ignored). It
// returns the size the client declared, 0 without SIZE.
func (c *conn) checkMailParams(params []string) (size int64, id replyID, ok bool) {
	for _, p := range params {
		key, value, _ := strings.Cut(p, "=")
		switch strings.ToUpper(key) {
		case "SIZE":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				return 0, rSyntaxErrorParams, false
			}
			if n > c.srv.cfg.Server.MessageSizeLimit {
				return 0, rMessageSizeExceeded, false
			}
			size = n
		case "BODY":
			switch strings.ToUpper(value) {
			case "7BIT", "8BITMIME":
			default:
				return 0, rParameterUnimplemented, false
			}
		case "SMTPUTF8":
			if value != "" {
				return 0, rSyntaxErrorParams, false
			}
		case "AUTH":
		default:
			return 0, rParameterUnimplemented, false
		}
	}
	return size, 0, true
}

// rcpt runs RCPT TO: rcpt_count_max, then the rcpt stage, whose refusal
// refuses only this recipient (unless it is a deny).
func (c *conn) rcpt(arg string) {
	if !c.tx.active {
		c.reply(c.srv.replies.get(rBadSequence))
		return
	}
	to, params, ok := parsePath(arg, "TO:")
	if !ok || to.Null {
		c.reply(c.srv.replies.get(rSyntaxErrorParams))
		return
	}
	if len(params) > 0 {
		c.reply(c.srv.replies.get(rParameterUnimplemented))
		return
	}
	if c.tx.rcpts >= c.srv.cfg.Server.SMTP.RcptCountMax {
		c.reply(c.srv.replies.get(rTooManyRecipients))
		return
	}
	d := c.ps.Rcpt(c.srv.ctx, to)
	if d.Action == policy.ActionRefuse {
		c.tx.refusal = &d
		c.refuse(policy.Rcpt, d, "rcpt", "<"+to.String()+">")
		return
	}
	c.tx.rcpts++
	c.replyContinue(d, rOk)
}

// custom returns the reply a rule chose for a command it let through: an
// info() code below 400, or the code of an accept() or faccept() of this
// stage (not one repeated from an earlier stage).
func (c *conn) custom(d policy.Decision) (object.Code, bool) {
	if d.Reply.Code != 0 {
		return d.Reply, true
	}
	v := d.Verdict
	if st := v.Status; st != nil && st.Code != nil && !v.Skipped && (st.Kind == policy.Accept || st.Kind == policy.Faccept) {
		if st.Code.Code < 400 {
			return *st.Code, true
		}
		c.log.Warn("an accepting status has a refusing reply code; sending the default reply", "reply", replyText(*st.Code), "rule", v.Rule)
	}
	return object.Code{}, false
}

// replyContinue answers a command the rules let through: their reply, or
// the default def.
func (c *conn) replyContinue(d policy.Decision, def replyID) {
	if r, ok := c.custom(d); ok {
		c.reply(r)
		return
	}
	c.reply(c.srv.replies.get(def))
}

// refusal returns the reply of a refusal: the rule's code as is, or, for
// deny() and reject() without a code, the Denied and Failure replies of
// the table (which [server.smtp.codes] may override).
func (c *conn) refusal(d policy.Decision) object.Code {
	v := d.Verdict
	switch {
	case v.Err != nil && c.srv.opts.OnError == policy.OnErrorDeny:
		return c.srv.replies.get(rDenied)
	case v.Err == nil && v.Status != nil && v.Status.Code == nil && v.Status.Kind == policy.Deny:
		return c.srv.replies.get(rDenied)
	case v.Err == nil && v.Status != nil && v.Status.Code == nil && v.Status.Kind == policy.Reject:
		return c.srv.replies.get(rFailure)
	case d.Reply.Code == 0:
		return c.srv.replies.get(rFailure)
	}
	return d.Reply
}

// refuse answers a refused command. A deny ends the session after its
// reply. Every refusal but a recipient's (that is not a deny) ends a
// transaction and is counted; extra goes to its log line.
func (c *conn) refuse(st policy.Stage, d policy.Decision, extra ...any) {
	r := c.refusal(d)
	if st != policy.Rcpt || d.EndSession {
		c.finish(outcomeOf(r), d, r, nil, extra...)
	} else {
		c.log.Debug("recipient refused", append([]any{"reply", replyText(r), "rule", d.Verdict.Rule}, extra...)...)
	}
	c.reply(r)
	if d.EndSession {
		c.quit = true
		c.tx.active = false
	}
}

// endTransaction ends the mail transaction in progress (RSET, HELO, the
// end of the message or of the session). One whose recipients were all
// refused counts with its last refusal.
func (c *conn) endTransaction() {
	if c.tx.active && c.tx.rcpts == 0 && c.tx.refusal != nil {
		d := *c.tx.refusal
		r := c.refusal(d)
		c.finish(outcomeOf(r), d, r, nil)
	}
	c.tx = txState{}
	c.ps.Tx.Reset()
}

// outcomeOf is the transaction outcome of a refusal's reply.
func outcomeOf(r object.Code) string {
	if r.Code >= 400 && r.Code < 500 {
		return outcomeTempfail
	}
	return outcomeReject
}

// finish counts a transaction's outcome and logs it: the deciding stage
// and rule, the transaction id, the sender, the reply of a refusal and
// err, a failure of the server's own.
func (c *conn) finish(outcome string, d policy.Decision, r object.Code, err error, extra ...any) {
	if m := c.srv.opts.Metrics; m != nil {
		m.Transaction(outcome)
	}
	v := d.Verdict
	if !c.log.IsInfo() && err == nil && v.Err == nil {
		return
	}
	args := []any{"outcome", outcome}
	if v.Rule != "" {
		args = append(args, "stage", v.RuleStage.String(), "rule", v.Rule, "at", v.Pos.String())
	} else {
		args = append(args, "stage", v.Stage.String())
	}
	if c.tx.active {
		args = append(args, "id", c.ps.Tx.MessageID, "from", "<"+c.tx.from.String()+">", "rcpts", c.tx.rcpts)
	}
	if r.Code != 0 {
		args = append(args, "reply", replyText(r))
	}
	if d.Quarantine != "" {
		args = append(args, "quarantine", d.Quarantine)
	}
	args = append(args, extra...)
	switch {
	case err != nil:
		c.log.Error("transaction", append(args, "error", err.Error())...)
	case v.Err != nil:
		c.log.Warn("transaction", append(args, "error", v.Err.Error())...)
	default:
		c.log.Info("transaction", args...)
	}
}
