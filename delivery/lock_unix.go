//go:build unix && !linux

package delivery

import (
	"fmt"
	"os"
	"syscall"
)

// openNoFollow makes opening a symbolic link fail.
const openNoFollow = syscall.O_NOFOLLOW

// tryLock takes an exclusive flock(2) lock on f without waiting; it
// reports false when the lock is held elsewhere. (Open file description
// fcntl locks exist on Linux only.)
func tryLock(f *os.File) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var (
		locked bool
		lerr   error
	)
	err = rc.Control(func(fd uintptr) {
		switch err := syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB); err {
		case nil:
			locked = true
		case syscall.EWOULDBLOCK, syscall.EINTR:
		default:
			lerr = fmt.Errorf("flock: %w", err)
		}
	})
	if err == nil {
		err = lerr
	}
	return locked, err
}
