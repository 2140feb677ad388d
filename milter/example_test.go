package milter_test

import (
	"context"
	"fmt"
	"net"

	gomilter "github.com/d--j/go-milter"

	"github.com/vsl-milter/vsl-milter/milter"
	"github.com/vsl-milter/vsl-milter/policy"
)

// Example serves a rule set and plays the MTA with go-milter's client:
// the rules refuse the sender, and the MTA gets their reply.
func Example() {
	rules, err := policy.Load("main.vsl", []byte(`#{
  mail: [
    rule "no spammers" || if mail_from().domain == "spam.example" { deny("550 5.7.1 go away") } else { next() },
  ],
}`), policy.Options{})
	if err != nil {
		panic(err)
	}
	srv := milter.NewServer(milter.Options{
		Rules:   func() *policy.Rules { return rules }, // a reload swaps what this returns
		OnError: policy.OnErrorTempfail,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0") // smtpd_milters = inet:127.0.0.1:PORT
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	s, err := gomilter.NewClient("tcp", ln.Addr().String()).Session(nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	s.Conn("client.example", gomilter.FamilyInet, 4711, "192.0.2.10")
	s.Helo("client.example")
	act, err := s.Mail("bob@spam.example", "")
	if err != nil {
		panic(err)
	}
	fmt.Println(act.SMTPReply)
	// Output: 550 5.7.1 go away
}
