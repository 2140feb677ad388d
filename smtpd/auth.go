package smtpd

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/policy/object"
)

// credentials are what a SASL exchange gave. They live only until the
// authenticate stage has run, and are never logged.
type credentials struct {
	authID, password string
}

// errAuthzID refuses a PLAIN exchange asking to act as someone else.
var errAuthzID = errors.New("smtpd: an authorization identity other than the user is not supported")

// newSASLServer returns the server side of mech, which fills cr.
func newSASLServer(mech string, cr *credentials) sasl.Server {
	if mech == "LOGIN" {
		return &loginServer{cr: cr}
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return errAuthzID
		}
		cr.authID, cr.password = username, password
		return nil
	})
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login): "Username:" and "Password:" challenges. A
// user name given with AUTH LOGIN (an initial response, as many clients
// send) skips the first.
type loginServer struct {
	cr   *credentials
	step int
}

// Next implements sasl.Server.
func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		s.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		s.cr.authID, s.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		s.cr.password, s.step = string(response), 3
		return nil, true, nil
	}
	return nil, false, errors.New("smtpd: LOGIN exchange already done")
}

// auth runs AUTH (RFC 4954) with PLAIN or LOGIN, offered under TLS, or in
// clear text when enable_dangerous_mechanism_in_clair. The exchange gives a
// user name and a password, which the authenticate stage judges through
// auth().authid and auth().authpass. The client is authenticated only when
// a rule of that stage accepts them (accept() or faccept()): no rule,
// next() or a refusal fail with AuthInvalidCredentials, or the rule's own
// code, and a deny also ends the session. More failed or cancelled
// attempts than attempt_count_max end the session too.
func (c *conn) auth(arg string) {
	a := c.srv.cfg.Server.SMTP.Auth
	if len(c.srv.mechs) == 0 {
		c.reply(c.srv.replies.get(rUnimplemented))
		return
	}
	if !c.helo || c.tx.active || c.authed {
		c.reply(c.srv.replies.get(rBadSequence))
		return
	}
	fields := strings.Fields(arg)
	if len(fields) == 0 || len(fields) > 2 {
		c.reply(c.srv.replies.get(rSyntaxErrorParams))
		return
	}
	mech := strings.ToUpper(fields[0])
	if !slices.Contains(c.srv.mechs, mech) {
		c.reply(c.srv.replies.get(rAuthMechNotSupported))
		return
	}
	if !c.secured && !a.EnableDangerousMechanismInClair {
		c.reply(c.srv.replies.get(rAuthMechanismMustBeEncrypted))
		return
	}
	var cr credentials
	server := newSASLServer(mech, &cr)
	var resp []byte // nil: no initial response
	if len(fields) == 2 {
		var ok bool
		if resp, ok = decodeSASL(fields[1]); !ok {
			c.reply(c.srv.replies.get(rAuthErrorDecode64))
			return
		}
	}
	for {
		challenge, done, err := server.Next(resp)
		if err != nil {
			c.authFailed(nil)
			return
		}
		if done {
			break
		}
		c.reply(object.Code{Code: 334, Text: base64.StdEncoding.EncodeToString(challenge)})
		line, err := c.readCommand()
		switch {
		case errors.Is(err, errLineTooLong):
			c.reply(c.srv.replies.get(rAuthErrorDecode64))
			return
		case err != nil:
			c.readFailed(err)
			return
		case line == "*":
			c.authFails++
			c.reply(c.srv.replies.get(rAuthClientCanceled))
			c.checkAttempts()
			return
		}
		var ok bool
		if resp, ok = decodeSASL(line); !ok {
			c.reply(c.srv.replies.get(rAuthErrorDecode64))
			return
		}
	}
	d := c.ps.Authenticate(c.srv.ctx, policy.Auth{Type: mech, AuthID: cr.authID, AuthPass: cr.password})
	cr = credentials{}
	v := d.Verdict
	if d.Action == policy.ActionContinue && v.Err == nil && !v.Skipped && v.Status != nil &&
		(v.Status.Kind == policy.Accept || v.Status.Kind == policy.Faccept) {
		c.authed = true
		c.log.Debug("client authenticated", "mechanism", mech)
		c.replyContinue(d, rAuthSucceeded)
		return
	}
	c.authFailed(&d)
}

// authFailed answers a failed authentication: d is the authenticate
// stage's decision (nil when the exchange itself failed).
func (c *conn) authFailed(d *policy.Decision) {
	c.ps.Tx.Auth = nil
	c.authFails++
	invalid := c.srv.replies.get(rAuthInvalidCredentials)
	switch {
	case d == nil || d.Action != policy.ActionRefuse:
		c.log.Debug("authentication failed")
		c.reply(invalid)
	case d.Verdict.Err != nil || d.Verdict.Status != nil && d.Verdict.Status.Code != nil:
		c.refuse(policy.Authenticate, *d) // the rule's reply, or on_error's
	default:
		c.finish(outcomeOf(invalid), *d, invalid, nil)
		c.reply(invalid)
		if d.EndSession {
			c.quit = true
		}
	}
	c.checkAttempts()
}

// checkAttempts ends the session after more failed authentications than
// attempt_count_max (-1: no limit).
func (c *conn) checkAttempts() {
	if limit := c.srv.cfg.Server.SMTP.Auth.AttemptCountMax; limit >= 0 && c.authFails > limit && !c.quit {
		c.log.Info("too many failed authentication attempts; closing the connection", "attempts", c.authFails)
		c.quit = true
	}
}

// decodeSASL decodes a SASL response: base64, or "=" for an empty one.
func decodeSASL(s string) ([]byte, bool) {
	if s == "=" {
		return []byte{}, true
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return b, err == nil
}
