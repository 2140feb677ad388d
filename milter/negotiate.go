package milter

import (
	"fmt"
	"strings"

	milter "github.com/d--j/go-milter"

	"github.com/vsl-milter/vsl-milter/policy"
)

// callback says how the MTA sends one SMTP event.
type callback uint8

const (
	// cbOff: the MTA does not send the event (SMFIP_NO*).
	cbOff callback = iota
	// cbOneWay: the MTA sends the event and does not wait for an answer
	// (SMFIP_NR_*): the data is needed by later rules, but this stage has
	// none, so it cannot decide anything.
	cbOneWay
	// cbReply: the MTA sends the event and waits for the answer.
	cbReply
)

// The macros the sessions read. Postfix and Sendmail send only the macros
// a milter asks for, per stage.
const (
	macroQueueID    = milter.MacroQueueId    // i
	macroServerName = milter.MacroMTAFQDN    // j
	macroMTAVersion = milter.MacroMTAVersion // v: "Postfix 3.7.11" for Postfix
	macroAuthAuthen = milter.MacroAuthAuthen
	macroAuthType   = milter.MacroAuthType
	macroTLSVersion = milter.MacroTlsVersion
	macroDaemonAddr = milter.MacroDaemonAddr
	macroDaemonPort = milter.MacroDaemonPort
	macroClientAddr = milter.MacroClientAddr
	macroClientPort = milter.MacroClientPort
)

// plan is what a connection negotiates for a rule set: which events the
// MTA sends, which of them wait for an answer, which macros come with
// them, and which modifications the milter may make.
type plan struct {
	rules                     *policy.Rules
	connect, helo, mail, rcpt callback
	message                   bool // headers and body are sent (one-way)
	// data: DATA is answered. The delivery stage runs there when it
	// cannot read the message (policy.Rules.DeliversBeforeMessage), and a
	// message left with nothing to do is accepted without its content.
	data          bool
	protocol      milter.OptProtocol
	actions       milter.OptAction
	serverOptions []milter.Option
}

// newPlan decides the negotiation for rules. A stage's data is needed when
// the stage or a later one has directives (later rules read client_ip(),
// helo(), mail_from(), rcpt_list()); the MTA must wait for the answer only
// when the stage itself has directives. So:
//
//   - connect, helo: answered when the stage has a rule (or a delegate);
//     one-way when it has only actions, or when a later stage has
//     directives that may read the connection's data
//     (policy.Rules.ReadsConnection: Postfix has no macro for the HELO
//     name, so the event is the only way to learn it); off otherwise. The
//     client's address then comes as macros with the first event sent,
//     for the log lines (ensureConnected).
//   - envfrom runs the authenticate and mail stages: answered when either
//     has directives; one-way when a later stage has some (the envelope,
//     the transaction's reset and message id); off otherwise. A deny at
//     connect or helo needs no envfrom answer: the MTA itself refuses every
//     later command of a connection refused there.
//   - envrcpt: answered when rcpt has directives, one-way when preq, postq
//     or delivery have some, off otherwise.
//   - headers and body: sent one-way when preq, postq or delivery have
//     directives, off otherwise. End of header and unknown commands are
//     never needed. The end of message always comes (the protocol has no
//     way to turn it off), unless the milter accepted or refused the
//     message earlier: it applies what the rules recorded.
//   - DATA: answered when the headers and body are sent but only the
//     delivery stage, blind to the message, follows the envelope
//     (policy.Rules.DeliversBeforeMessage): the delivery stage runs at
//     DATA, and a message that then needs nothing more (no local
//     delivery, no modification, no quarantine) is accepted there, so the
//     MTA sends neither its content nor its end. Off otherwise.
//
// The header (and body) also come, one-way, when a rule set without rules
// after DATA calls set_header, rename_header or remove_header before it:
// those change a field the milter must see to address it.
//
// Without a single directive the milter asks for nothing but the end of
// message and may not modify messages. With directives it asks for every
// modification it can make, as a rule set does not declare which
// functions its rules call (asking costs nothing in the protocol), except
// replacing the body: no vSL function does, and Postfix prepares for a
// replacement when it is allowed. Only a rule set with a delegate
// directive asks for it, since the filter may change the body.
func newPlan(rules *policy.Rules) *plan {
	has := func(st policy.Stage) bool { return len(rules.Directives(st)) > 0 }
	from := func(st policy.Stage) bool {
		for ; st <= policy.Delivery; st++ {
			if has(st) {
				return true
			}
		}
		return false
	}
	pick := func(here, later bool) callback {
		switch {
		case here:
			return cbReply
		case later:
			return cbOneWay
		}
		return cbOff
	}
	// A stage whose directives are all actions cannot change the answer
	// (an action's value is ignored): its event is sent one-way. Only a
	// script error could refuse there; it is answered at the next event
	// that waits for an answer, as any refusal decided at a one-way event.
	decides := func(st policy.Stage) bool {
		for _, d := range rules.Directives(st) {
			if d.Kind != policy.ActionKind {
				return true
			}
		}
		return false
	}
	// The connect and HELO events carry the connection's data: later
	// stages need them only when their rules read it.
	conn := rules.ReadsConnection()
	p := &plan{
		rules:   rules,
		connect: pick(decides(policy.Connect), has(policy.Connect) || conn && from(policy.Connect)),
		helo:    pick(decides(policy.Helo), has(policy.Helo) || conn && from(policy.Helo)),
		mail:    pick(decides(policy.Authenticate) || decides(policy.Mail), from(policy.Authenticate)),
		rcpt:    pick(decides(policy.Rcpt), from(policy.Rcpt)),
		message: from(policy.PreQ) || editsHeaderEarly(rules),
	}
	p.data = p.message && rules.DeliversBeforeMessage()
	proto := milter.OptNoEOH | milter.OptNoEOHReply |
		milter.OptNoUnknown | milter.OptNoUnknownReply | milter.OptNoHeaderReply | milter.OptNoBodyReply
	if !p.data {
		proto |= milter.OptNoData | milter.OptNoDataReply
	}
	for _, cb := range []struct {
		c         callback
		off, none milter.OptProtocol
	}{
		{p.connect, milter.OptNoConnect, milter.OptNoConnReply},
		{p.helo, milter.OptNoHelo, milter.OptNoHeloReply},
		{p.mail, milter.OptNoMailFrom, milter.OptNoMailReply},
		{p.rcpt, milter.OptNoRcptTo, milter.OptNoRcptReply},
	} {
		switch cb.c {
		case cbOff:
			proto |= cb.off | cb.none
		case cbOneWay:
			proto |= cb.none
		}
	}
	if !p.message {
		proto |= milter.OptNoHeaders | milter.OptNoBody
	}
	p.protocol = proto
	if from(policy.Connect) {
		p.actions = milter.OptAddHeader | milter.OptChangeHeader | milter.OptAddRcpt | milter.OptRemoveRcpt |
			milter.OptChangeFrom | milter.OptQuarantine
	}
	if delegates(rules) {
		// No vSL function replaces the body, but a filter may.
		p.actions |= milter.OptChangeBody
	}
	p.actions |= milter.OptSetMacros

	// Connection macros come with the connect event; when it is off, they
	// come with the first event that is not (the session starts there,
	// and its log lines name the client).
	mail := []milter.MacroName{macroQueueID, macroAuthAuthen, macroAuthType, macroTLSVersion}
	var rcpt, data []milter.MacroName
	if p.data {
		data = []milter.MacroName{macroQueueID} // for the log line of a message accepted there
	}
	eom := []milter.MacroName{macroQueueID, macroMTAVersion}
	if p.connect == cbOff {
		connMacros := []milter.MacroName{macroServerName, macroClientAddr, macroClientPort, macroDaemonAddr, macroDaemonPort}
		switch {
		case p.mail != cbOff:
			mail = append(mail, connMacros...)
		case p.rcpt != cbOff:
			rcpt = connMacros
		case p.data:
			data = append(data, connMacros...)
		default:
			eom = append(eom, connMacros...)
		}
	}
	p.serverOptions = []milter.Option{
		milter.WithNegotiationCallback(p.negotiate),
		// trackedConn bounds the writes it gathers (writeTimeout).
		milter.WithWriteTimeout(0),
		milter.WithMacroRequest(milter.StageConnect, []milter.MacroName{macroServerName, macroDaemonAddr, macroDaemonPort, macroTLSVersion}),
		milter.WithMacroRequest(milter.StageHelo, []milter.MacroName{macroTLSVersion}),
		milter.WithMacroRequest(milter.StageMail, mail),
		milter.WithMacroRequest(milter.StageEOM, eom),
	}
	if rcpt != nil {
		p.serverOptions = append(p.serverOptions, milter.WithMacroRequest(milter.StageRcpt, rcpt))
	}
	if data != nil {
		p.serverOptions = append(p.serverOptions, milter.WithMacroRequest(milter.StageData, data))
	}
	return p
}

// delegates reports whether the rules have a delegate directive.
func delegates(rules *policy.Rules) bool {
	for _, st := range policy.Stages() {
		for _, d := range rules.Directives(st) {
			if d.Kind == policy.DelegateKind {
				return true
			}
		}
	}
	return false
}

// headerEditors change an existing header field, so the milter must see
// the header to apply them.
var headerEditors = []string{"set_header", "msg::set_header", "rename_header", "msg::rename_header",
	"remove_header", "msg::remove_header", "msg::rm_header", "rewrite_mail_from_message", "msg::rw_mail_from",
	"add_rcpt_message", "msg::add_rcpt", "remove_rcpt_message", "msg::rm_rcpt", "rewrite_rcpt_message", "msg::rw_rcpt"}

// editsHeaderEarly reports whether the rules may change existing header
// fields (a call in any of the rule set's files, modules included).
func editsHeaderEarly(rules *policy.Rules) bool {
	for _, name := range headerEditors {
		if rules.Calls(name) {
			return true
		}
	}
	return false
}

// replies reports whether the event of stage waits for an answer.
func (p *plan) replies(st policy.Stage) bool {
	switch st {
	case policy.Connect:
		return p.connect == cbReply
	case policy.Helo:
		return p.helo == cbReply
	case policy.Authenticate, policy.Mail:
		return p.mail == cbReply
	case policy.Rcpt:
		return p.rcpt == cbReply
	}
	return true // end of message
}

// negotiate is go-milter's negotiation callback: it offers the plan, cut
// down to what the MTA supports (and with the connect event, for an MTA
// that cannot be asked for macros). An MTA without the no-reply flags
// (protocol < 6) gets an answer to every event it sends; an MTA without a
// modification the rules then make gets a temporary failure for that
// message (logged), rather than a message silently left unchanged.
func (p *plan) negotiate(mtaVersion, _ uint32, mtaActions, _ milter.OptAction, mtaProtocol, _ milter.OptProtocol, offered milter.DataSize) (uint32, milter.OptAction, milter.OptProtocol, milter.DataSize, error) {
	if mtaVersion < 2 {
		return 0, 0, 0, 0, fmt.Errorf("milter: the MTA speaks milter protocol version %d; 2 to 6 are supported", mtaVersion)
	}
	proto := p.protocol
	if mtaActions&milter.OptSetMacros == 0 {
		// An MTA that takes no macro requests sends the connection's
		// data only with the connect event: keep it, for the logs.
		proto &^= milter.OptNoConnect
	}
	return min(mtaVersion, milter.MaxServerProtocolVersion), p.actions & mtaActions, proto & mtaProtocol, offered, nil
}

// Describe tells in one line what a milter connection running rules asks
// of the MTA: which events it is sent, which of them wait for its answer,
// and whether the delivery stage runs at DATA. The check command prints
// it, so that an administrator sees what a rule set costs the MTA.
func Describe(rules *policy.Rules) string {
	p := newPlan(rules)
	word := func(c callback) string {
		switch c {
		case cbReply:
			return "answered"
		case cbOneWay:
			return "one-way"
		}
		return "off"
	}
	parts := []string{"connect " + word(p.connect), "helo " + word(p.helo), "mail " + word(p.mail), "rcpt " + word(p.rcpt)}
	if p.data {
		parts = append(parts, "data answered (the delivery stage runs there)")
	}
	body := "off"
	if p.message {
		body = "one-way"
	}
	parts = append(parts, "header and body "+body, "end of message answered")
	return strings.Join(parts, ", ")
}
