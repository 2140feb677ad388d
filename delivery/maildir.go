package delivery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vsl-milter/vsl-milter/internal/durable"
	"github.com/vsl-milter/vsl-milter/policy"
)

// deliverMaildir writes one copy into the maildir dir (below root), as
// the maildir specification (cr.yp.to/proto/maildir.html) says: the copy
// is written and fsynced under tmp/, then hard-linked into new/, and new/
// is fsynced; only then is it delivered. A reader therefore never sees a
// partial file in new/, and a crash leaves at most a stray file in tmp/,
// which readers clean up. The directories are created when missing (cur,
// new, then tmp: a tmp/ that exists means the other two do).
//
// On file systems without hard links the copy is renamed instead.
func (a *Agent) deliverMaildir(_ context.Context, root, dir string, m *localMessage, rcpt policy.MailAddr) error {
	hdr := m.header(rcpt)
	size := len(hdr) + len(m.body)
	vsize := size + 2 + m.lines // with CRLF line ends: IMAP's RFC822.SIZE
	tmpDir, newDir := filepath.Join(dir, "tmp"), filepath.Join(dir, "new")

	var (
		f    *os.File
		name string
		err  error
		made bool
	)
	name = a.maildirName(size, vsize)
	for attempt := 0; ; attempt++ {
		f, err = os.OpenFile(filepath.Join(tmpDir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			break
		}
		switch {
		case errors.Is(err, fs.ErrNotExist) && !made:
			if err := makeDirs(root, filepath.Join(dir, "cur"), newDir, tmpDir); err != nil {
				return err
			}
			made = true
			continue
		case errors.Is(err, fs.ErrExist) && attempt < 3:
			name = a.maildirName(size, vsize)
			continue
		}
		return fmt.Errorf("create file in tmp: %w", err)
	}
	tmpPath := f.Name()
	delivered := false
	defer func() {
		if !delivered {
			os.Remove(tmpPath)
		}
	}()

	if err := a.writeSync(f, "maildir-written", hdr, m.body); err != nil {
		return err
	}
	newPath, err := a.linkNew(tmpPath, newDir, name, size, vsize)
	if err != nil {
		return err
	}
	if err := durable.SyncDir(newDir); err != nil {
		// The copy may not survive a crash: take it back, so that the
		// retry that the temporary failure causes makes no duplicate.
		os.Remove(newPath)
		return err
	}
	delivered = true
	// A leftover in tmp/ is harmless: readers remove old files there.
	os.Remove(tmpPath)
	return nil
}

// writeSync writes parts to f, fsyncs and closes it.
func (a *Agent) writeSync(f *os.File, point string, parts ...[]byte) error {
	err := func() error {
		for _, p := range parts {
			if _, err := f.Write(p); err != nil {
				return fmt.Errorf("write %s: %w", f.Name(), err)
			}
		}
		if a.hook != nil {
			if err := a.hook(point, f.Name()); err != nil {
				return fmt.Errorf("write %s: %w", f.Name(), err)
			}
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", f.Name(), err)
		}
		return nil
	}()
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", f.Name(), cerr)
	}
	return err
}

// linkNew links tmpPath into newDir under name (a fresh name if that one
// is taken) and returns the new path.
func (a *Agent) linkNew(tmpPath, newDir, name string, size, vsize int) (string, error) {
	for attempt := 0; ; attempt++ {
		newPath := filepath.Join(newDir, name)
		err := os.Link(tmpPath, newPath)
		switch {
		case err == nil:
			return newPath, nil
		case errors.Is(err, fs.ErrExist) && attempt < 3:
			name = a.maildirName(size, vsize)
			continue
		case errors.Is(err, syscall.EPERM) || errors.Is(err, errors.ErrUnsupported):
			// No hard links here (vfat, some network file systems).
			if _, err := os.Lstat(newPath); err == nil {
				return "", fmt.Errorf("move into new: %s exists", newPath)
			}
			if err := os.Rename(tmpPath, newPath); err != nil {
				return "", fmt.Errorf("move into new: %w", err)
			}
			return newPath, nil
		}
		return "", fmt.Errorf("link into new: %w", err)
	}
}

// maildirName returns a unique file name, in the form Dovecot and Courier
// use: time.MusecPpidQcountRrandom.host,S=size,W=vsize. The seconds and
// microseconds, the process id and a counter of this Agent make it unique
// on this host, the random part across agents of one process and pid
// reuse; the host part across hosts sharing the maildir. S= and W= are
// the Maildir++ size fields: the file's size, and its size with CRLF line
// ends.
func (a *Agent) maildirName(size, vsize int) string {
	now := a.now()
	var r [4]byte
	rand.Read(r[:])
	return fmt.Sprintf("%d.M%dP%dQ%dR%x.%s,S=%d,W=%d",
		now.Unix(), now.Nanosecond()/1000, a.pid, a.counter.Add(1), r, a.mdHost, size, vsize)
}

// maildirHost escapes the characters that have a meaning in maildir file
// names, as the specification says: '/' as \057, ':' as \072, and ',' (the
// Maildir++ field separator) as \054.
func maildirHost(h string) string {
	return strings.NewReplacer("/", `\057`, ":", `\072`, ",", `\054`).Replace(h)
}
