package milter

import (
	"bytes"
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
	tc := newTrackedConn(cc, hclog.NewNullLogger())
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
