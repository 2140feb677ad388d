package delivery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/vsl-milter/vsl-milter/internal/durable"
	"github.com/vsl-milter/vsl-milter/policy"
)

// Lock polling: the first retry after minLockWait, doubling up to
// maxLockWait, until the context ends.
const (
	minLockWait = time.Millisecond
	maxLockWait = 50 * time.Millisecond
)

// deliverMbox appends one copy to the mbox file path (below root) in the
// mboxrd format: a "From sender date" line (MAILER-DAEMON for the null
// sender, the date in asctime form), the message with every line matching
// ^>*From  quoted by one more '>', and an empty line. If the file does not
// end with an empty line, one is added first.
//
// Locking: the file is locked with flock(2) LOCK_EX, and on Linux also
// with an open file description fcntl(2) write lock on the whole file, so
// that both flock users and fcntl users (Dovecot's and Postfix's default
// on Linux, mutt) are kept out; dot-lock files are not used. Both locks
// belong to the open file, not the process, so they also serialise the
// goroutines of this process; they are released when the file is closed.
// Waiting for them honours ctx. A reader that takes neither lock may see
// an append in progress.
//
// The copy is written with one write and fsynced; if either fails the file
// is truncated back to its old size, so a failed copy leaves no trace.
func (a *Agent) deliverMbox(ctx context.Context, root, path string, m *localMessage, rcpt policy.MailAddr) error {
	f, err := openMbox(root, path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lockFile(ctx, f); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	old := st.Size()
	sep, err := separator(f, old)
	if err != nil {
		return err
	}

	fromLine := "From " + m.sender + " " + a.now().Format(time.ANSIC) + "\n"
	hdr, body := m.header(rcpt), m.mbox()
	buf := make([]byte, 0, len(sep)+len(fromLine)+len(hdr)+len(body)+1)
	buf = append(buf, sep...)
	buf = append(buf, fromLine...)
	buf = append(buf, hdr...)
	buf = append(buf, body...)
	buf = append(buf, '\n')

	_, err = f.Write(buf)
	if err == nil && a.hook != nil {
		err = a.hook("mbox-written", path)
	}
	if err != nil {
		return rollback(f, old, fmt.Errorf("write %s: %w", path, err))
	}
	if err := f.Sync(); err != nil {
		return rollback(f, old, fmt.Errorf("sync %s: %w", path, err))
	}
	if old == 0 {
		// The file may be new (made by this call or a concurrent one):
		// make its directory entry durable too.
		if err := durable.SyncDir(filepath.Dir(path)); err != nil {
			return err
		}
	}
	return nil
}

// openMbox opens the mbox file for appending, creating it (mode 0600) and
// its directory when missing. A symbolic link is refused.
func openMbox(root, path string) (*os.File, error) {
	const flags = os.O_RDWR | os.O_APPEND | openNoFollow
	f, err := os.OpenFile(path, flags, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if err := makeDirs(root, filepath.Dir(path)); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(path, flags|os.O_CREATE, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("open mbox: %w", err)
	}
	return f, nil
}

// separator returns what must precede a new message in an mbox file of
// size bytes so that its From line follows an empty line.
func separator(f *os.File, size int64) (string, error) {
	if size == 0 {
		return "", nil
	}
	var tail [2]byte
	n := min(size, 2)
	if _, err := f.ReadAt(tail[:n], size-n); err != nil {
		return "", fmt.Errorf("read end of %s: %w", f.Name(), err)
	}
	switch {
	case n == 2 && tail == [2]byte{'\n', '\n'}:
		return "", nil
	case tail[n-1] == '\n':
		return "\n", nil
	}
	return "\n\n", nil
}

// rollback truncates f back to size after a failed append and returns
// cause, with the truncation's failure if any.
func rollback(f *os.File, size int64, cause error) error {
	err := f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("%w; truncating back to %d bytes failed too: %v", cause, size, err)
	}
	return cause
}

// lockFile takes the locks of tryLock, polling until they are free or ctx
// ends.
func lockFile(ctx context.Context, f *os.File) error {
	wait := minLockWait
	var t *time.Timer
	for {
		ok, err := tryLock(f)
		if err != nil || ok {
			return err
		}
		if t == nil {
			t = time.NewTimer(wait)
			defer t.Stop()
		} else {
			t.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("held by another delivery: %w", context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, maxLockWait)
	}
}
