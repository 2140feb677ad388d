package smtpd_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/smtpd"
)

// authRules accept joe's credentials at the authenticate stage and refuse
// others without ending the session; a connect rule records is_secured()
// in a header, so the tests see what the rules saw.
const authRules = `#{
  connect: [ action "tls at connect" || add_header("X-Secured-At-Connect", is_secured().to_string()) ],
  authenticate: [
    rule "joe" || if auth().authid == "joe" && auth().authpass == "secret" { accept() } else { reject() },
  ],
  mail: [ action "tls at mail" || add_header("X-Secured-At-Mail", is_secured().to_string()) ],
}`

// sendWith sends one message with go-smtp's client c (which has said
// hello), authenticating with a when it is not nil.
func sendWith(t *testing.T, c *smtp.Client, a sasl.Client) error {
	t.Helper()
	if a != nil {
		if err := c.Auth(a); err != nil {
			return err
		}
	}
	if err := c.Mail("joe@example.com", nil); err != nil {
		return err
	}
	if err := c.Rcpt("jane@example.org", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func TestSTARTTLS(t *testing.T) {
	for _, kind := range []smtpd.Kind{smtpd.Relay, smtpd.Submission} {
		t.Run(kind.String(), func(t *testing.T) {
			h := newHarness(t, authRules, setup{kind: kind, toml: tlsTOML("May") + "[server.smtp.auth]\n"})
			// In clear text: STARTTLS is offered, AUTH is not.
			raw := dialRaw(t, h.addr)
			raw.expect("220 mx.example.com Service ready")
			raw.send("EHLO client.example")
			raw.expect("250-mx.example.com", "250-PIPELINING", "250-SIZE 10000000", "250-8BITMIME", "250-SMTPUTF8", "250 STARTTLS")
			raw.send("QUIT")
			raw.expect("221 Service closing transmission channel")

			c, err := smtp.DialStartTLS(h.addr, clientTLS(t))
			if err != nil {
				t.Fatalf("STARTTLS: %v", err)
			}
			defer c.Close()
			if err := c.Hello("client.example"); err != nil {
				t.Fatal(err)
			}
			if ok, _ := c.Extension("STARTTLS"); ok {
				t.Error("STARTTLS is offered again under TLS")
			}
			if !c.SupportsAuth("PLAIN") || !c.SupportsAuth("LOGIN") {
				t.Error("AUTH PLAIN LOGIN is not offered under TLS")
			}
			if err := sendWith(t, c, sasl.NewPlainClient("", "joe", "secret")); err != nil {
				t.Fatalf("sending: %v", err)
			}
			q := h.queue.all()
			if len(q) != 1 {
				t.Fatalf("queued %d messages, want 1", len(q))
			}
			if s := q[0].summary(); s != "enqueue from=<joe@example.com> rcpts=<jane@example.org> authid=joe secured" {
				t.Errorf("queued %s", s)
			}
			for _, want := range []string{
				"X-Secured-At-Connect: false\r\n",
				"X-Secured-At-Mail: true\r\n",
				"by mx.example.com with ESMTPSA id " + q[0].saved.MessageID + ";",
			} {
				if !strings.Contains(q[0].message, want) {
					t.Errorf("the message lacks %q:\n%s", want, q[0].message)
				}
			}
		})
	}
}

func TestImplicitTLS(t *testing.T) {
	h := newHarness(t, authRules, setup{kind: smtpd.Submissions, toml: tlsTOML("Encrypt") + "[server.smtp.auth]\nmust_be_authenticated = true\n"})
	c, err := smtp.DialTLS(h.addr, clientTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS is offered under implicit TLS")
	}
	// must_be_authenticated: no mail before AUTH.
	err = c.Mail("joe@example.com", nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 530 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 0}) || se.Message != "Authentication required" {
		t.Fatalf("MAIL before AUTH: %v, want 530 5.7.0 Authentication required", err)
	}
	if err := c.Auth(sasl.NewLoginClient("joe", "secret")); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	if err := c.Mail("joe@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("jane@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: hi\r\n\r\nhello\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	q := h.queue.all()
	if len(q) != 1 || !q[0].saved.Secured || q[0].saved.AuthID != "joe" {
		t.Fatalf("queued %+v", q)
	}
	if !strings.Contains(q[0].message, "X-Secured-At-Connect: true\r\n") {
		t.Errorf("is_secured() was false at connect under implicit TLS:\n%s", q[0].message)
	}
}

func TestImplicitTLSNeedsTLS(t *testing.T) {
	h := newHarness(t, "", setup{})
	ln := mustListen(t)
	if err := h.srv.ServeListener(ln, smtpd.Submissions); err == nil {
		t.Fatal("ServeListener(Submissions) without TLS succeeded")
	}
}

func TestAuthOverTLS(t *testing.T) {
	h := newHarness(t, authRules, setup{toml: tlsTOML("May") + "[server.smtp.auth]\n"})
	c, err := smtp.DialStartTLS(h.addr, clientTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Auth(sasl.NewPlainClient("", "joe", "wrong"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 535 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 8}) || se.Message != "Authentication credentials invalid" {
		t.Fatalf("AUTH with a wrong password: %v, want 535 5.7.8 Authentication credentials invalid", err)
	}
	// go-smtp's client answered the 535 with "*", which is an unknown
	// command here; the session goes on.
	if err := c.Auth(sasl.NewPlainClient("", "joe", "secret")); err != nil {
		t.Fatalf("AUTH with the right password: %v", err)
	}
	if err := c.Mail("joe@example.com", nil); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	// A PLAIN authorization identity other than the user is refused
	// without asking the rules.
	c2, err := smtp.DialStartTLS(h.addr, clientTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	err = c2.Auth(sasl.NewPlainClient("admin", "joe", "secret"))
	if !errors.As(err, &se) || se.Code != 535 {
		t.Fatalf("AUTH as someone else: %v, want 535", err)
	}
}

// TestSTARTTLSInjection checks that commands sent in clear text after
// STARTTLS, in the same packet, are dropped rather than run under TLS.
func TestSTARTTLSInjection(t *testing.T) {
	h := newHarness(t, "", setup{toml: tlsTOML("May")})
	c := dialRaw(t, h.addr)
	c.expect("220 mx.example.com Service ready")
	c.send("EHLO client.example")
	c.expect("250-mx.example.com", "250-PIPELINING", "250-SIZE 10000000", "250-8BITMIME", "250-SMTPUTF8", "250 STARTTLS")
	c.send("STARTTLS", "MAIL FROM:<injected@example.net>")
	c.expect("220 TLS go ahead")
	tc := tls.Client(c.conn, clientTLS(t))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	sc := newRawClient(t, tc)
	sc.send("MAIL FROM:<joe@example.com>")
	// No HELO since STARTTLS: had the injected MAIL run, this would be a
	// nested MAIL; it is refused because the session started over.
	sc.expect("503 Bad sequence of commands")
	sc.send("EHLO client.example")
	sc.expect("250-mx.example.com", "250-PIPELINING", "250-SIZE 10000000", "250-8BITMIME", "250 SMTPUTF8")
	sc.send("STARTTLS")
	sc.expect("554 5.5.1 Error: TLS already active")
	sc.send("QUIT")
	sc.expect("221 Service closing transmission channel")
	if strings.Contains(h.logs.String(), "injected") {
		t.Error("the injected command reached the logs")
	}
	if !strings.Contains(h.logs.String(), "dropping clear-text input sent after STARTTLS") {
		t.Error("the injection was not logged")
	}
}

func TestTLSHandshakeTimeout(t *testing.T) {
	h := newHarness(t, "", setup{kind: smtpd.Submissions, toml: tlsTOML("May") + "handshake_timeout = \"200ms\"\n"})
	c := dialRaw(t, h.addr)
	// Say nothing: the server gives up on the handshake and closes.
	c.expectClosed()
}
