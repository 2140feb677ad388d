package delivery

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vsl-milter/vsl-milter/policy"
)

// TestMboxFcntlLock checks that a reader holding only an fcntl lock (as
// Dovecot and Postfix do on Linux) keeps deliveries out too.
func TestMboxFcntlLock(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "example.com", "bob")
	os.Mkdir(filepath.Dir(path), 0o700)
	os.WriteFile(path, nil, 0o600)
	holder, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(holder.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Skipf("no OFD locks: %v", err)
	}
	a := newTestAgent(t, Options{MboxRoot: root})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = a.Deliver(ctx, []byte(testMsg), addr("a@b"), []policy.DeliveryChoice{choice("bob@example.com", policy.Mbox, "")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("delivery under an fcntl lock: %v", err)
	}
	if st, _ := os.Stat(path); st.Size() != 0 {
		t.Errorf("mbox written under an fcntl lock")
	}
}
