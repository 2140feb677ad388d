package delivery

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/policy"
)

// rawServer serves one connection with handle, for sessions go-smtp's
// server will not play; it returns the address and a function returning
// the lines the client sent, once handle has returned.
func rawServer(t *testing.T, handle func(c net.Conn, r *bufio.Reader, read func() string)) (string, func() []string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		handle(c, r, func() string {
			s, _ := r.ReadString('\n')
			mu.Lock()
			lines = append(lines, strings.TrimRight(s, "\r\n"))
			mu.Unlock()
			return s
		})
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String(), func() []string {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
}

func TestForwardRawSessions(t *testing.T) {
	write := func(c net.Conn, s string) { c.Write([]byte(s)) }
	rcpts := func(target string, locals ...string) []policy.DeliveryChoice {
		var out []policy.DeliveryChoice
		for _, l := range locals {
			out = append(out, choice(l+"@example.com", policy.Forward, target))
		}
		return out
	}
	a := newTestAgent(t, Options{Hostname: "relay.test"})
	ctx := context.Background()

	t.Run("greeting 554", func(t *testing.T) {
		target, _ := rawServer(t, func(c net.Conn, r *bufio.Reader, read func() string) {
			write(c, "554 no service here\r\n")
			read()
		})
		f := failureOf(t, a.Deliver(ctx, []byte(testMsg), addr("a@b"), rcpts(target, "bob")))
		if f.Temporary || !strings.Contains(f.Error(), "greeting: SMTP error 554") {
			t.Errorf("failure: %v", f.Error())
		}
	})

	t.Run("greeting 421", func(t *testing.T) {
		target, _ := rawServer(t, func(c net.Conn, r *bufio.Reader, read func() string) {
			write(c, "421-busy\r\n421 come back later\r\n")
		})
		f := failureOf(t, a.Deliver(ctx, []byte(testMsg), addr("a@b"), rcpts(target, "bob")))
		if !f.Temporary {
			t.Errorf("failure: %v", f.Error())
		}
	})

	t.Run("no ESMTP: HELO", func(t *testing.T) {
		target, sent := rawServer(t, func(c net.Conn, r *bufio.Reader, read func() string) {
			write(c, "220-old\r\n220 server\r\n")
			for {
				l := read()
				switch cmd := strings.ToUpper(strings.Fields(l + " x")[0]); cmd {
				case "EHLO":
					write(c, "502 what?\r\n")
				case "HELO", "MAIL", "RCPT":
					write(c, "250 ok\r\n")
				case "DATA":
					write(c, "354 go\r\n")
					for read() != ".\r\n" {
					}
					write(c, "250 queued\r\n")
				case "QUIT":
					write(c, "221 bye\r\n")
					return
				default:
					return
				}
			}
		})
		if err := a.Deliver(ctx, []byte("Subject: x\r\n\r\n.dot\r\n"), addr("a@b"), rcpts(target, "bob")); err != nil {
			t.Fatal(err)
		}
		want := "EHLO relay.test|EHLO relay.test|HELO relay.test|MAIL FROM:<a@b>|RCPT TO:<bob@example.com>|DATA|Subject: x||..dot|.|QUIT"
		if got := strings.Join(sent(), "|"); got != want {
			t.Errorf("session:\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("STARTTLS injection", func(t *testing.T) {
		target, sent := rawServer(t, func(c net.Conn, r *bufio.Reader, read func() string) {
			write(c, "220 server\r\n")
			read()
			write(c, "250-server\r\n250 STARTTLS\r\n")
			read()
			write(c, "220 go ahead\r\n250 injected\r\n")
			read()
		})
		f := failureOf(t, a.Deliver(ctx, []byte(testMsg), addr("a@b"), rcpts(target, "bob")))
		if !f.Temporary || !strings.Contains(f.Error(), "before the TLS handshake") {
			t.Errorf("failure: %v", f.Error())
		}
		// Nothing after STARTTLS: the client hung up.
		if got := sent(); len(got) != 3 || got[1] != "STARTTLS" || got[2] != "" {
			t.Errorf("session %q", got)
		}
	})

	t.Run("connection lost after RCPT", func(t *testing.T) {
		target, _ := rawServer(t, func(c net.Conn, r *bufio.Reader, read func() string) {
			write(c, "220 server\r\n")
			for range 3 { // EHLO, EHLO, MAIL
				read()
				write(c, "250 ok\r\n")
			}
			read() // RCPT bob
			write(c, "250 ok\r\n")
			read() // RCPT carol: hang up
		})
		err := a.Deliver(ctx, []byte(testMsg), addr("a@b"), rcpts(target, "bob", "carol", "dave"))
		var e *Error
		if !errors.As(err, &e) || len(e.Failures) != 3 || !e.Failures[0].Temporary || !e.Failures[2].Temporary {
			t.Fatalf("got %v, want the three recipients failed temporarily", err)
		}
	})
}

func TestForwardRecipients(t *testing.T) {
	b := &backend{}
	target := startServer(t, b, nil)
	a := newTestAgent(t, Options{})
	err := a.Deliver(context.Background(), []byte(testMsg), addr("a@example.org"), []policy.DeliveryChoice{
		{Rcpt: policy.MailAddr{Local: "x\r\nRCPT TO:<y", Domain: "example.com"}, Transport: policy.Forward, Target: target},
		{Rcpt: policy.MailAddr{Null: true}, Transport: policy.Forward, Target: target},
		choice("bob@example.com", policy.Forward, target),
	})
	var e *Error
	if !errors.As(err, &e) || len(e.Failures) != 2 || e.Temporary() {
		t.Fatalf("got %v, want two permanent failures", err)
	}
	if msgs := b.received(); len(msgs) != 1 || strings.Join(msgs[0].to, ",") != "bob@example.com" {
		t.Errorf("received %+v", msgs)
	}
}

func TestForwardSMTPUTF8(t *testing.T) {
	b := &backend{}
	target := startServer(t, b, nil)
	a := newTestAgent(t, Options{})
	// Without SMTPUTF8 the non-ASCII recipient fails, the other is sent.
	f := failureOf(t, a.Deliver(context.Background(), []byte(testMsg), addr("a@example.org"), []policy.DeliveryChoice{
		choice("jörg@example.com", policy.Forward, target), choice("bob@example.com", policy.Forward, target),
	}))
	if f.Temporary || f.Rcpt.Local != "jörg" || !strings.Contains(f.Error(), "SMTPUTF8") {
		t.Errorf("without SMTPUTF8: %v", f.Error())
	}
	if msgs := b.received(); len(msgs) != 1 || strings.Join(msgs[0].to, ",") != "bob@example.com" {
		t.Errorf("received %+v", msgs)
	}
	// A non-ASCII sender: nothing can be sent.
	f = failureOf(t, a.Deliver(context.Background(), []byte(testMsg), addr("jörg@example.org"), []policy.DeliveryChoice{
		choice("bob@example.com", policy.Forward, target),
	}))
	if f.Temporary || !strings.Contains(f.Error(), "SMTPUTF8") {
		t.Errorf("without SMTPUTF8: %v", f.Error())
	}

	b = &backend{}
	rcpts := []policy.DeliveryChoice{choice("jörg@example.com", policy.Forward, "")}

	s := smtp.NewServer(b)
	s.Domain, s.EnableSMTPUTF8, s.ErrorLog = "target.test", true, discardLogger{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	rcpts[0].Target = l.Addr().String()
	if err := a.Deliver(context.Background(), []byte(testMsg), addr("a@example.org"), rcpts); err != nil {
		t.Fatal(err)
	}
	if msgs := b.received(); len(msgs) != 1 || msgs[0].to[0] != "jörg@example.com" {
		t.Errorf("received %+v", msgs)
	}
}
