package delivery

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vsl-milter/vsl-milter/internal/durable"
	"github.com/vsl-milter/vsl-milter/policy"
)

// maxElem is the longest file name most file systems accept (NAME_MAX).
const maxElem = 255

// mailboxPath returns where rcpt's mailbox is under root: the maildir
// directory or the mbox file, root/<domain>/<local>. It fails permanently
// for addresses that cannot name a mailbox, temporarily when root is not
// configured.
func mailboxPath(root string, t policy.Transport, rcpt policy.MailAddr) (string, error) {
	if root == "" {
		return "", fmt.Errorf("%s delivery: %w", t, errNoRoot)
	}
	if rcpt.Null {
		return "", permanent(errors.New("the null address has no mailbox"))
	}
	domain := strings.TrimSuffix(strings.ToLower(rcpt.Domain), ".")
	d, err := pathElem("domain", domain)
	if err != nil {
		return "", err
	}
	l, err := pathElem("local part", rcpt.Local)
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, d, l)
	// pathElem makes this impossible; checked all the same, as the cost of
	// being wrong is writing anywhere on the machine.
	if rel, err := filepath.Rel(root, p); err != nil || rel != filepath.Join(d, l) || strings.HasPrefix(rel, "..") {
		return "", permanent(fmt.Errorf("address %q leads outside %s", rcpt.String(), root))
	}
	return p, nil
}

// pathElem turns one part of an address into one path element: '%' is
// written %25, '/' %2F and a leading '.' %2E, so the element is never
// "", "." or "..", holds no separator, and different parts give different
// elements. Empty parts, control characters and overlong results are
// refused.
func pathElem(what, s string) (string, error) {
	if s == "" {
		return "", permanent(fmt.Errorf("empty %s", what))
	}
	if hasControl(s) {
		return "", permanent(fmt.Errorf("%s %q contains control characters", what, s))
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%':
			b.WriteString("%25")
		case c == '/':
			b.WriteString("%2F")
		case c == '.' && i == 0:
			b.WriteString("%2E")
		default:
			b.WriteByte(c)
		}
	}
	if b.Len() > maxElem {
		return "", permanent(fmt.Errorf("%s %q is too long for a file name", what, s))
	}
	return b.String(), nil
}

// checkRoot fails temporarily when root is missing or not a directory: a
// root is never created (it may be an unmounted volume).
func checkRoot(root string) error {
	st, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("root directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("root directory %s is not a directory", root)
	}
	return nil
}

// makeDirs creates each of dirs that is missing, in order, with mode
// 0700, together with their missing parents below root; root itself must
// exist. Each directory's parent is fsynced, whether this call or a
// concurrent one created it, so the new entries survive a crash before any
// file inside them is reported delivered.
func makeDirs(root string, dirs ...string) error {
	if err := checkRoot(root); err != nil {
		return err
	}
	synced := map[string]bool{}
	for _, dir := range dirs {
		rel, err := filepath.Rel(root, dir)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("directory %s is not below %s", dir, root)
		}
		cur := root
		for _, elem := range strings.Split(rel, string(filepath.Separator)) {
			next := filepath.Join(cur, elem)
			if err := os.Mkdir(next, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("create directory: %w", err)
			}
			if !synced[next] {
				if err := durable.SyncDir(cur); err != nil {
					return err
				}
				synced[next] = true
			}
			cur = next
		}
	}
	return nil
}
