package policy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"time"

	"github.com/vsl-milter/vsl-milter/policy/object"
)

// OnError is what a script error (a runtime error, an exhausted budget, a
// passed deadline, a panic) answers.
type OnError uint8

// The on_error settings of SEMANTICS §8.
const (
	OnErrorTempfail OnError = iota // 451 4.7.1: the client tries again later (default)
	OnErrorDeny                    // vSMTP's behaviour: 554, refused
	OnErrorAccept                  // go on as if the failing rule said next()
)

// ParseOnError reads an on_error setting: "tempfail", "deny" or "accept".
func ParseOnError(s string) (OnError, bool) {
	switch s {
	case "tempfail", "":
		return OnErrorTempfail, true
	case "deny":
		return OnErrorDeny, true
	case "accept":
		return OnErrorAccept, true
	}
	return 0, false
}

// String returns the setting's name.
func (o OnError) String() string {
	return [...]string{"tempfail", "deny", "accept"}[o]
}

// Action is what a front end does with the command whose stage just ran.
type Action uint8

// The actions a Decision asks for. The front end turns them into milter
// answers (SEMANTICS §8) or SMTP replies (§9).
const (
	// ActionContinue: go on (at rcpt: this recipient is accepted).
	ActionContinue Action = iota
	// ActionRefuse: refuse this command with Decision.Reply (4xx: temporarily,
	// 5xx: permanently); at rcpt only this recipient is refused.
	ActionRefuse
	// ActionDiscard: accept the message and drop it silently (a deny at postq or
	// delivery, when the client has already been told 250).
	ActionDiscard
	// ActionQuarantine: accept the message and hold it under
	// Decision.Quarantine.
	ActionQuarantine
	// ActionDelegate: hand the message to the filter of
	// Decision.Delegation (Transaction.DelegatedMessage), then call
	// Session.Resume with what comes back, or Session.FailDelegation.
	ActionDelegate
)

var actionNames = [...]string{"continue", "refuse", "discard", "quarantine", "delegate"}

// String returns the action's name.
func (a Action) String() string { return actionNames[a] }

// Decision is what one stage decided, in the front end's terms.
type Decision struct {
	Action Action
	// Reply is the reply of a refusal, or the reply an info() status asks
	// for with a 2xx/3xx code (a front end that can send it may).
	Reply object.Code
	// EndSession: the rules denied the session (a deny): an SMTP server
	// closes the connection after the reply; a milter refuses every later
	// transaction of the connection.
	EndSession bool
	// Final: rule processing of the transaction is over (a finished status
	// such as faccept): no later stage will run rules, so a front end may
	// stop asking once nothing else is pending.
	Final bool
	// Quarantine is the quarantine's name for ActionQuarantine.
	Quarantine string
	// Delegation is the pending delegation of ActionDelegate.
	Delegation *Delegation
	// Verdict is the stage's verdict behind the decision.
	Verdict Verdict
}

// tempfailReply is the reply of a script error under on_error = tempfail.
var tempfailReply = object.Code{Code: 451, Enhanced: "4.7.1", Text: "Requested action aborted: local error in processing"}

// SessionOptions configure a Session.
type SessionOptions struct {
	OnError OnError
	// Deadline bounds each stage's run (0: none but the caller's context).
	Deadline time.Duration
	RunOptions
}

// Session drives the stages of one client connection on one rule set: the
// front ends (milter, SMTP server) and the test command call its methods as
// the SMTP dialogue advances, and act on the Decisions. It holds the rules
// it started with, so a reload does not change a session in flight.
type Session struct {
	Rules *Rules
	Tx    *Transaction
	Opts  SessionOptions
	// early is the delivery stage's decision when it ran before the
	// message (DeliveryBeforeMessage), for EndOfMessage.
	early *Decision
}

// NewSession starts a session on rules.
func NewSession(rules *Rules, opts SessionOptions) *Session {
	return &Session{Rules: rules, Tx: NewTransaction(), Opts: opts}
}

// run runs one stage under the session's deadline.
func (s *Session) run(ctx context.Context, st Stage) Verdict {
	if s.Opts.Deadline > 0 && s.Rules.Busy(st, s.Tx) {
		sc, stop := withStageDeadline(ctx, s.Opts.Deadline)
		defer stop()
		ctx = sc
	}
	return s.Rules.Run(ctx, st, s.Tx, s.Opts.RunOptions)
}

// decide maps a verdict to a decision (SEMANTICS §8).
func (s *Session) decide(v Verdict) Decision {
	d := Decision{Verdict: v}
	if v.Err != nil {
		switch s.Opts.OnError {
		case OnErrorAccept:
			return d
		case OnErrorDeny:
			// vSMTP's behaviour: the error denies, and a deny ends the session.
			d.Action, d.Reply, d.EndSession = ActionRefuse, (&Status{Kind: Deny}).Reply(), true
		default:
			d.Action, d.Reply = ActionRefuse, tempfailReply
		}
		return d
	}
	st := v.Status
	d.Final = st.Kind.Finished()
	switch st.Kind {
	case Deny:
		if v.Stage >= PostQ {
			d.Action = ActionDiscard
			return d
		}
		d.Action, d.Reply, d.EndSession = ActionRefuse, st.Reply(), true
	case Reject:
		d.Action, d.Reply = ActionRefuse, st.Reply()
	case Info:
		d.Reply = st.Reply()
		if d.Reply.Code >= 400 {
			d.Action = ActionRefuse
		}
	case Delegated:
		d.Action, d.Delegation, d.Final = ActionDelegate, s.Tx.Delegation(), false
	case Quarantine:
		if v.Stage >= PreQ {
			d.Action, d.Quarantine = ActionQuarantine, st.Quarantine
		}
	}
	return d
}

// Connect runs the connect stage for a new connection.
func (s *Session) Connect(ctx context.Context, client, server netip.AddrPort, serverName string, secured bool) Decision {
	tx := s.Tx
	tx.ClientAddr, tx.ServerAddr, tx.ServerName, tx.Secured = client, server, serverName, secured
	if tx.ConnectedAt.IsZero() {
		tx.ConnectedAt = time.Now()
	}
	return s.decide(s.run(ctx, Connect))
}

// Helo runs the helo stage with the HELO/EHLO argument.
func (s *Session) Helo(ctx context.Context, name string) Decision {
	s.Tx.Helo = name
	return s.decide(s.run(ctx, Helo))
}

// Authenticate runs the authenticate stage for a client that gave
// credentials (standalone) or that the MTA reports authenticated (milter).
func (s *Session) Authenticate(ctx context.Context, a Auth) Decision {
	s.Tx.Auth = &a
	return s.decide(s.run(ctx, Authenticate))
}

// Mail starts a transaction with the envelope sender and runs the mail
// stage. A transaction in progress is ended first.
func (s *Session) Mail(ctx context.Context, from MailAddr, messageID string) Decision {
	tx := s.Tx
	if tx.reached > Authenticate || tx.inMessage {
		tx.Reset()
	}
	s.early = nil
	tx.MailFrom, tx.MailAt = from, time.Now()
	tx.cache = valueCache{}
	if messageID == "" {
		messageID = NewMessageID()
	}
	tx.MessageID = messageID
	return s.decide(s.run(ctx, Mail))
}

// Rcpt adds a recipient and runs the rcpt stage. A refused recipient is
// taken out of the envelope again and listed by Transaction.Refused.
func (s *Session) Rcpt(ctx context.Context, rcpt MailAddr) Decision {
	tx := s.Tx
	tx.Rcpts = append(tx.Rcpts, rcpt)
	tx.current = rcpt
	d := s.decide(s.run(ctx, Rcpt))
	if d.Action == ActionRefuse {
		if i := tx.hasRcpt(rcpt); i >= 0 {
			tx.Rcpts = append(tx.Rcpts[:i], tx.Rcpts[i+1:]...)
		}
		tx.refused = append(tx.refused, Refusal{Rcpt: rcpt, Reply: d.Reply, Rule: d.Verdict.Rule})
	}
	return d
}

// Message records the message when it has arrived and runs the preq stage
// (before the client is answered).
func (s *Session) Message(ctx context.Context, headers []Header, body []byte) Decision {
	s.Tx.SetMessage(headers, body)
	return s.decide(s.run(ctx, PreQ))
}

// PostQueue runs the postq stage: in milter mode right after preq at the
// end of the message, in standalone mode from the spool.
func (s *Session) PostQueue(ctx context.Context) Decision {
	return s.decide(s.run(ctx, PostQ))
}

// Delivery runs the delivery stage, after postq.
func (s *Session) Delivery(ctx context.Context) Decision {
	return s.decide(s.run(ctx, Delivery))
}

// AfterQueue runs the postq and delivery stages and returns the first
// decision that is not ActionContinue, or the last one.
func (s *Session) AfterQueue(ctx context.Context) Decision {
	d := s.PostQueue(ctx)
	if d.Action != ActionContinue {
		return d
	}
	return s.Delivery(ctx)
}

// EndOfMessage runs preq, postq and delivery for a message that arrived
// (milter mode: all at end of message) and returns the first decision that
// is not ActionContinue, or the last one.
//
// When the delivery stage ran before the message (DeliveryBeforeMessage),
// it is not run again: its decision is returned after preq and postq.
func (s *Session) EndOfMessage(ctx context.Context, headers []Header, body []byte) Decision {
	if early := s.early; early != nil {
		// preq and postq have no directives (Rules.DeliversBeforeMessage):
		// running them would only repeat a status that finished the
		// transaction at delivery as theirs.
		s.early = nil
		s.Tx.SetMessage(headers, body)
		return *early
	}
	d := s.Message(ctx, headers, body)
	if d.Action != ActionContinue {
		return d
	}
	return s.AfterQueue(ctx)
}

// NewMessageID returns a random transaction id (24 hex digits).
func NewMessageID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Saved is what a spool keeps of a transaction whose message was accepted,
// to run its postq and delivery stages later, possibly after a restart.
// It holds no password.
type Saved struct {
	ClientAddr  netip.AddrPort `json:"client_addr"`
	ServerAddr  netip.AddrPort `json:"server_addr"`
	ServerName  string         `json:"server_name"`
	Secured     bool           `json:"secured"`
	ConnectedAt time.Time      `json:"connected_at"`
	Helo        string         `json:"helo"`
	AuthType    string         `json:"auth_type,omitempty"`
	AuthID      string         `json:"auth_id,omitempty"`
	MailFrom    MailAddr       `json:"mail_from"`
	MailAt      time.Time      `json:"mail_at"`
	Rcpts       []MailAddr     `json:"rcpts"`
	MessageID   string         `json:"message_id"`
	// Finished is the status that ended rule processing before the
	// message was queued (faccept), "" when later rules still run.
	Finished string `json:"finished,omitempty"`
}

// Save returns what a spool must keep of the transaction, besides the
// message itself (Transaction.MessageText), to Resume it.
func (tx *Transaction) Save() Saved {
	s := Saved{
		ClientAddr: tx.ClientAddr, ServerAddr: tx.ServerAddr, ServerName: tx.ServerName, Secured: tx.Secured,
		ConnectedAt: tx.ConnectedAt, Helo: tx.Helo, MailFrom: tx.MailFrom, MailAt: tx.MailAt,
		Rcpts: append([]MailAddr(nil), tx.Rcpts...), MessageID: tx.MessageID,
	}
	if tx.Auth != nil {
		s.AuthType, s.AuthID = tx.Auth.Type, tx.Auth.AuthID
	}
	if tx.finished != nil && tx.finished.Status != nil {
		s.Finished = tx.finished.Status.Kind.String()
	}
	return s
}

// Resume rebuilds a session from a saved transaction and its message, to
// run the postq and delivery stages (PostQueue, Delivery) from a spool.
func Resume(rules *Rules, opts SessionOptions, s Saved, headers []Header, body []byte) *Session {
	tx := &Transaction{
		ClientAddr: s.ClientAddr, ServerAddr: s.ServerAddr, ServerName: s.ServerName, Secured: s.Secured,
		ConnectedAt: s.ConnectedAt, Helo: s.Helo, MailFrom: s.MailFrom, MailAt: s.MailAt,
		Rcpts: append([]MailAddr(nil), s.Rcpts...), MessageID: s.MessageID,
		Headers: headers, Body: body, inMessage: true, stage: PreQ, reached: PreQ,
	}
	if len(tx.Rcpts) > 0 {
		tx.current = tx.Rcpts[len(tx.Rcpts)-1]
	}
	if s.AuthID != "" || s.AuthType != "" {
		tx.Auth = &Auth{Type: s.AuthType, AuthID: s.AuthID}
	}
	if s.Finished == Faccept.String() {
		tx.finished = &Verdict{Status: &Status{Kind: Faccept}, Stage: PreQ, RuleStage: PreQ}
	}
	return &Session{Rules: rules, Tx: tx, Opts: opts}
}

// Pending reports whether the rules recorded anything the front end must
// still apply: modifications, header changes waiting for the message, or a
// delivery choice other than Deliver.
func (tx *Transaction) Pending() bool {
	if len(tx.mods) > 0 || len(tx.deferred) > 0 {
		return true
	}
	for _, d := range tx.deliveries {
		if d.Transport != Deliver {
			return true
		}
	}
	return false
}
