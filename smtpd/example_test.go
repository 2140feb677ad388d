package smtpd_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/config"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/smtpd"
)

// printQueue is a Queue that prints what it is given (a real one writes
// the message durably first).
type printQueue struct{}

func (printQueue) Enqueue(_ context.Context, saved policy.Saved, message []byte) (string, error) {
	fmt.Printf("queued from %s to %v\n", saved.MailFrom, saved.Rcpts)
	return "1", nil
}

func (printQueue) Quarantine(_ context.Context, name string, saved policy.Saved, message []byte) error {
	fmt.Printf("quarantined in %s\n", name)
	return nil
}

// Example serves rules that accept mail for example.org only, and sends
// two messages with go-smtp's client.
func Example() {
	cfg := config.Default()
	cfg.Server.Domain = "mx.example.com"
	rules, err := policy.Load("main.vsl", []byte(`#{
  rcpt: [ rule "local only" || if rcpt().domain == "example.org" { next() } else { deny("550 5.7.1 relay denied") } ],
}`), policy.Options{})
	if err != nil {
		panic(err)
	}
	srv, err := smtpd.New(smtpd.Options{
		Config: cfg,
		Rules:  func() *policy.Rules { return rules },
		Queue:  printQueue{},
	})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.ServeListener(ln, smtpd.Relay)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	send := func(to string) error {
		c, err := smtp.Dial(ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		return c.SendMail("joe@example.com", []string{to}, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
	}
	fmt.Println("sent:", send("jane@example.org"))
	fmt.Println("refused:", send("someone@example.net"))
	// Output:
	// queued from joe@example.com to [jane@example.org]
	// sent: <nil>
	// refused: SMTP error 550: relay denied
}
