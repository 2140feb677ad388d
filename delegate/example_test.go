package delegate_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/delegate"
)

// A front end registers the delegation's id before it sends the message;
// the filter sends the message back to the receiver, which hands it to
// the waiter with that id and refuses anything else.
func ExampleWaiters() {
	waiters := delegate.NewWaiters()
	r, err := delegate.Listen("127.0.0.1:0", waiters, delegate.ReceiverOptions{Hostname: "mx.example.com"})
	if err != nil {
		panic(err)
	}
	defer r.Close(context.Background())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	back, err := waiters.Wait(ctx, "4ABCDE.1")
	if err != nil {
		panic(err)
	}

	// What a filter does once it has scanned the message.
	filter := func(msg string) error {
		c, err := smtp.Dial(r.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		return c.SendMail("alice@example.org", []string{"bob@example.net"}, strings.NewReader(msg))
	}
	fmt.Println(filter("Subject: not delegated\r\n\r\nhi\r\n"))
	fmt.Println(filter("X-Scanned: clean\r\n" +
		`X-VSMTP-DELEGATION: sent; stage=postq; directive="antivirus"; id="4ABCDE.1"` + "\r\n" +
		"Subject: hello\r\n\r\nhi\r\n"))

	m := <-back
	fmt.Println(m.ID, m.Directive, m.Headers[0].Name, delegate.Result(nil))
	// Output:
	// SMTP error 550: Delegated messages only: no valid X-VSMTP-DELEGATION header
	// <nil>
	// 4ABCDE.1 antivirus X-Scanned success
}
