package delivery

import (
	"bytes"
	"context"
	"testing"

	"github.com/vsl-milter/vsl-milter/policy"
)

// message4K returns a 4 KiB message with CRLF line ends.
func message4K() []byte {
	var b bytes.Buffer
	b.WriteString("From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: benchmark\r\n\r\n")
	for b.Len() < 4096-80 {
		b.WriteString("The quick brown fox jumps over the lazy dog, again and again and again.\r\n")
	}
	for b.Len() < 4094 {
		b.WriteByte('x')
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// BenchmarkMaildir delivers a 4 KiB message into a maildir: write, fsync,
// link into new/, fsync new/, as in production.
func BenchmarkMaildir(b *testing.B) {
	msg := message4K()
	a := newTestAgent(b, Options{MaildirRoot: b.TempDir()})
	rcpts := []policy.DeliveryChoice{choice("bob@example.com", policy.Maildir, "")}
	from := addr("alice@example.org")
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Deliver(ctx, msg, from, rcpts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMbox appends a 4 KiB message to an mbox (lock, write, fsync).
func BenchmarkMbox(b *testing.B) {
	msg := message4K()
	a := newTestAgent(b, Options{MboxRoot: b.TempDir()})
	rcpts := []policy.DeliveryChoice{choice("bob@example.com", policy.Mbox, "")}
	from := addr("alice@example.org")
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Deliver(ctx, msg, from, rcpts); err != nil {
			b.Fatal(err)
		}
	}
}
