package smtpd

import (
	"strconv"
	"strings"

	"github.com/vsl-milter/vsl-milter/config"
	"github.com/vsl-milter/vsl-milter/policy/object"
)

// replyID names a reply the server sends of its own accord. The names are
// vSMTP v1's (vsmtp-common's CodeID), the keys of [server.smtp.codes].
type replyID uint8

const (
	rGreetings replyID = iota
	rHelp
	rClosing
	rHelo
	rEhloPain    // the EHLO reply without TLS; built from the offered extensions unless configured
	rEhloSecured // the EHLO reply under TLS; likewise
	rDataStart
	rOk
	rFailure
	rDenied
	rUnrecognizedCommand
	rSyntaxErrorParams
	rParameterUnimplemented
	rUnimplemented
	rBadSequence
	rMessageSizeExceeded
	rTLSGoAhead
	rTLSNotAvailable
	rAlreadyUnderTLS
	rTLSRequired
	rAuthSucceeded
	rAuthMechNotSupported
	rAuthMechanismMustBeEncrypted
	rAuthInvalidCredentials
	rAuthRequired
	rAuthClientCanceled
	rAuthErrorDecode64
	rConnectionMaxReached
	rTooManyError
	rTimeout
	rTooManyRecipients
	rTooManyHops // ours: a mail loop (vSMTP v1 has no such reply)
	numReplies
)

// defaultReplies returns vSMTP v1's replies (vsmtp-config's default.rs),
// the ones SEMANTICS §9 lists, by id. "{domain}" stands for
// server.domain. The EHLO replies have no default: the server builds them.
// Help's text is ours (vSMTP's pointed at its vendor's support page), and
// AuthClientMustNotStart is never sent: both mechanisms offered take an
// initial response.
func defaultReplies() [numReplies]namedReply {
	return [numReplies]namedReply{
		rGreetings:                    {"Greetings", object.Code{Code: 220, Text: "{domain} Service ready"}},
		rHelp:                         {"Help", object.Code{Code: 214, Text: "Commands: HELO EHLO STARTTLS AUTH MAIL RCPT DATA RSET NOOP QUIT HELP"}},
		rClosing:                      {"Closing", object.Code{Code: 221, Text: "Service closing transmission channel"}},
		rHelo:                         {"Helo", object.Code{Code: 250, Text: "Ok"}},
		rEhloPain:                     {"EhloPain", object.Code{}},
		rEhloSecured:                  {"EhloSecured", object.Code{}},
		rDataStart:                    {"DataStart", object.Code{Code: 354, Text: "Start mail input; end with <CRLF>.<CRLF>"}},
		rOk:                           {"Ok", object.Code{Code: 250, Text: "Ok"}},
		rFailure:                      {"Failure", object.Code{Code: 451, Text: "Requested action aborted: local error in processing"}},
		rDenied:                       {"Denied", object.Code{Code: 554, Text: "permanent problems with the remote server"}},
		rUnrecognizedCommand:          {"UnrecognizedCommand", object.Code{Code: 500, Text: "Syntax error command unrecognized"}},
		rSyntaxErrorParams:            {"SyntaxErrorParams", object.Code{Code: 501, Text: "Syntax error in parameters or arguments"}},
		rParameterUnimplemented:       {"ParameterUnimplemented", object.Code{Code: 504, Text: "Command parameter not implemented"}},
		rUnimplemented:                {"Unimplemented", object.Code{Code: 502, Text: "Command not implemented"}},
		rBadSequence:                  {"BadSequence", object.Code{Code: 503, Text: "Bad sequence of commands"}},
		rMessageSizeExceeded:          {"MessageSizeExceeded", object.Code{Code: 552, Enhanced: "4.3.1", Text: "Message size exceeds fixed maximum message size"}},
		rTLSGoAhead:                   {"TlsGoAhead", object.Code{Code: 220, Text: "TLS go ahead"}},
		rTLSNotAvailable:              {"TlsNotAvailable", object.Code{Code: 454, Text: "TLS not available due to temporary reason"}},
		rAlreadyUnderTLS:              {"AlreadyUnderTLS", object.Code{Code: 554, Enhanced: "5.5.1", Text: "Error: TLS already active"}},
		rTLSRequired:                  {"TlsRequired", object.Code{Code: 530, Text: "Must issue a STARTTLS command first"}},
		rAuthSucceeded:                {"AuthSucceeded", object.Code{Code: 235, Enhanced: "2.7.0", Text: "Authentication succeeded"}},
		rAuthMechNotSupported:         {"AuthMechNotSupported", object.Code{Code: 504, Enhanced: "5.5.4", Text: "Mechanism is not supported"}},
		rAuthMechanismMustBeEncrypted: {"AuthMechanismMustBeEncrypted", object.Code{Code: 538, Enhanced: "5.7.11", Text: "Encryption required for requested authentication mechanism"}},
		rAuthInvalidCredentials:       {"AuthInvalidCredentials", object.Code{Code: 535, Enhanced: "5.7.8", Text: "Authentication credentials invalid"}},
		rAuthRequired:                 {"AuthRequired", object.Code{Code: 530, Enhanced: "5.7.0", Text: "Authentication required"}},
		rAuthClientCanceled:           {"AuthClientCanceled", object.Code{Code: 501, Text: "Authentication canceled by client"}},
		rAuthErrorDecode64:            {"AuthErrorDecode64", object.Code{Code: 501, Enhanced: "5.5.2", Text: "Invalid, not base64"}},
		rConnectionMaxReached:         {"ConnectionMaxReached", object.Code{Code: 554, Text: "Cannot process connection, closing"}},
		rTooManyError:                 {"TooManyError", object.Code{Code: 451, Text: "Too many errors from the client"}},
		rTimeout:                      {"Timeout", object.Code{Code: 451, Text: "Timeout - closing connection"}},
		rTooManyRecipients:            {"TooManyRecipients", object.Code{Code: 452, Text: "Requested action not taken: too many recipients"}},
		rTooManyHops:                  {"TooManyHops", object.Code{Code: 554, Enhanced: "5.4.6", Text: "Too many hops: mail loop detected"}},
	}
}

// namedReply is a reply and its name in [server.smtp.codes].
type namedReply struct {
	name  string
	reply object.Code
}

// replies is the server's reply table: the defaults with the overrides of
// [server.smtp.codes], "{domain}" replaced.
type replies struct {
	r [numReplies]object.Code
	// set marks the EHLO replies that were configured (the others are
	// built from the extensions offered).
	set [numReplies]bool
}

// newReplies builds the reply table for domain with the overrides codes
// (keyed by reply name; unknown names were refused by package config).
func newReplies(domain string, codes map[string]config.Reply) *replies {
	t := &replies{}
	for id, d := range defaultReplies() {
		r := d.reply
		if o, ok := codes[d.name]; ok {
			r = object.Code{Code: o.Code, Enhanced: o.Enhanced, Text: o.Text}
			t.set[id] = true
		}
		r.Text = strings.ReplaceAll(r.Text, "{domain}", domain)
		t.r[id] = r
	}
	return t
}

// get returns a reply of the table.
func (t *replies) get(id replyID) object.Code { return t.r[id] }

// shutdownReply is what a client waiting for its next command is told when
// the server shuts down (RFC 5321 §3.8); it is not one of vSMTP's replies.
func shutdownReply(domain string) object.Code {
	return object.Code{Code: 421, Text: domain + " Service not available, closing transmission channel"}
}

// appendReply appends the wire form of r: one line per line of its text,
// all but the last marked as continued ("250-"), each line carrying the
// enhanced code when there is one. CR and LF in the text only ever split
// lines, so a rule's text cannot inject a reply of its own.
func appendReply(b []byte, r object.Code) []byte {
	text := strings.ReplaceAll(r.Text, "\r", "")
	lines := strings.Split(text, "\n")
	code := strconv.Itoa(r.Code)
	for i, l := range lines {
		b = append(b, code...)
		if i < len(lines)-1 {
			b = append(b, '-')
		} else {
			b = append(b, ' ')
		}
		if r.Enhanced != "" {
			b = append(b, r.Enhanced...)
			if l != "" {
				b = append(b, ' ')
			}
		}
		b = append(b, l...)
		b = append(b, '\r', '\n')
	}
	return b
}

// replyText renders a reply for logs.
func replyText(r object.Code) string { return r.String() }
