package policy_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/policy"
)

// BenchmarkDoeTransaction runs a whole transaction through the Doe family
// rules of contrib/examples: connect, helo, mail, three recipients and a
// 4 KiB message through preq, postq and delivery, as a front end drives it,
// without I/O. Run: go test ./policy -run '^$' -bench Doe -benchmem
func BenchmarkDoeTransaction(b *testing.B) {
	rules, err := policy.LoadFile("../contrib/examples/doe-family/main.vsl", policy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	client := netip.MustParseAddrPort("198.51.100.20:52000")
	server := netip.MustParseAddrPort("192.168.1.254:25")
	from := policy.ParseMailAddr("grandma@example.org")
	rcpts := []policy.MailAddr{
		policy.ParseMailAddr("jenny.doe@doe-family.com"),
		policy.ParseMailAddr("john.doe@doe-family.com"),
		policy.ParseMailAddr("bob@example.net"),
	}
	headers := []policy.Header{
		{Name: "From", Value: "Grandma <grandma@example.org>"},
		{Name: "To", Value: "Jenny <jenny.doe@doe-family.com>, john.doe@doe-family.com, bob@example.net"},
		{Name: "Subject", Value: "Happy birthday"},
		{Name: "Message-ID", Value: "<1234@example.org>"},
	}
	body := []byte(strings.Repeat("Lots of love from all of us, see you on Sunday.\r\n", 4096/50))
	ctx := context.Background()
	opts := policy.SessionOptions{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := policy.NewSession(rules, opts)
		s.Connect(ctx, client, server, "doe-family.com", false)
		s.Helo(ctx, "mail.example.org")
		if d := s.Mail(ctx, from, "0123456789ab"); d.Action != policy.ActionContinue {
			b.Fatalf("mail: %+v", d)
		}
		for _, r := range rcpts {
			s.Rcpt(ctx, r)
		}
		if d := s.EndOfMessage(ctx, headers, body); d.Action != policy.ActionContinue {
			b.Fatalf("eom: %+v", d)
		}
		if n := len(s.Tx.Deliveries()); n != 4 {
			b.Fatalf("%d deliveries, want 4 (Jane added by the bcc)", n)
		}
	}
}
