package milter

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// countingConn records each write that reaches the connection.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, append([]byte(nil), p...))
	c.mu.Unlock()
	return len(p), nil
}

// packet writes a milter packet the way go-milter does: header, then data.
func packet(t *testing.T, c net.Conn, code byte, data string) {
	t.Helper()
	n := len(data) + 1
	if _, err := c.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), code}); err != nil {
		t.Fatal(err)
	}
	if data != "" {
		if _, err := c.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWritesGathered checks that the packets of one answer reach the MTA
// in one write, byte for byte, and that answers and progress
// notifications are never held back.
func TestWritesGathered(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	cc := &countingConn{Conn: a}
	var pool sync.Pool
	tc := newTrackedConn(cc, hclog.NewNullLogger(), &pool)
	defer tc.Close()

	// An end of message: two deleted recipients, a header, then accept.
	var want bytes.Buffer
	for _, p := range []struct {
		code byte
		data string
	}{{'-', "<a@example.net>\x00"}, {'-', "<b@example.net>\x00"}, {'h', "X-A\x001\x00"}, {'a', ""}} {
		n := len(p.data) + 1
		want.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), p.code})
		want.WriteString(p.data)
		packet(t, tc, p.code, p.data)
		if p.code != 'a' && len(cc.writes) != 0 {
			t.Fatalf("a modification was sent before the answer: %d writes", len(cc.writes))
		}
	}
	if len(cc.writes) != 1 || !bytes.Equal(cc.writes[0], want.Bytes()) {
		t.Fatalf("writes %q, want one write %q", cc.writes, want.Bytes())
	}

	// Answers and progress go out at once, each in one write.
	for i, code := range []byte{'c', 'p', 'y'} {
		data := ""
		if code == 'y' {
			data = "550 5.7.1 no\x00"
		}
		packet(t, tc, code, data)
		if len(cc.writes) != 2+i {
			t.Fatalf("after %c: %d writes, want %d", code, len(cc.writes), 2+i)
		}
	}

	// A modification left queued is sent before the next read.
	packet(t, tc, 'h', "X-B\x002\x00")
	go func() { b.Write([]byte{0, 0, 0, 1, 'A'}) }()
	buf := make([]byte, 5)
	if _, err := tc.Read(buf); err != nil {
		t.Fatal(err)
	}
	if len(cc.writes) != 5 {
		t.Fatalf("%d writes after a read, want 5: the queued modification was not sent", len(cc.writes))
	}
}

// TestConnBuffersReused checks that a released connection's buffers (read
// and message buffers) serve the next connection, and that the released
// one reads no more.
func TestConnBuffersReused(t *testing.T) {
	var pool sync.Pool
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	first := newTrackedConn(a, hclog.NewNullLogger(), &pool)
	go func() { b.Write([]byte{0, 0, 0, 1, 'A'}) }()
	if _, err := first.Read(make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	rb := first.rb
	body, text := first.messageBuffers()
	body = append(body, "the body"...)
	text = append(text, "the text"...)
	if b2, t2 := first.messageBuffers(); b2 != nil || t2 != nil {
		t.Error("the message buffers were handed out twice")
	}
	first.release(body, text)
	if _, err := first.Read(make([]byte, 5)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after release: %v, want net.ErrClosed", err)
	}
	c, d := net.Pipe()
	defer c.Close()
	defer d.Close()
	second := newTrackedConn(c, hclog.NewNullLogger(), &pool)
	if second.rb != rb {
		t.Skip("the pool dropped the buffers (it may, under GC)")
	}
	go func() { d.Write([]byte{0, 0, 0, 1, 'Q'}) }()
	buf := make([]byte, 5)
	if n, err := second.Read(buf); err != nil || n != 5 || buf[4] != 'Q' {
		t.Errorf("second connection read %q, %v", buf[:n], err)
	}
	body2, text2 := second.messageBuffers()
	if len(body2) != 0 || len(text2) != 0 || cap(body2) < len("the body") || cap(text2) < len("the text") {
		t.Errorf("second connection's message buffers: %q (cap %d), %q (cap %d); want the first's, empty",
			body2, cap(body2), text2, cap(text2))
	}
	second.release(make([]byte, keptBuffer+1), nil)
	if third := newTrackedConn(c, hclog.NewNullLogger(), &pool); third.rb == rb && cap(third.rb.body) > keptBuffer {
		t.Error("a buffer larger than keptBuffer was kept")
	}
}

// TestDeleteRecipientPacket checks the SMFIR_DELRCPT packets the session
// writes itself: what go-milter's DeleteRecipient would write.
func TestDeleteRecipientPacket(t *testing.T) {
	for _, tc := range []struct{ raw, data string }{
		{"a@example.net", "<a@example.net>\x00"},
		{"<a@example.net>", "<a@example.net>\x00"},
		{"<>", "<>\x00"},
	} {
		a, b := net.Pipe()
		cc := &countingConn{Conn: a}
		var pool sync.Pool
		s := &session{conn: newTrackedConn(cc, hclog.NewNullLogger(), &pool)}
		if err := s.deleteRecipient(nil, tc.raw); err != nil {
			t.Fatal(err)
		}
		packet(t, s.conn, 'a', "") // the answer that sends it
		n := len(tc.data) + 1
		want := append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), '-'}, tc.data...)
		want = append(want, 0, 0, 0, 1, 'a')
		if len(cc.writes) != 1 || !bytes.Equal(cc.writes[0], want) {
			t.Errorf("%q: wrote %q, want %q", tc.raw, cc.writes, want)
		}
		a.Close()
		b.Close()
	}
}
