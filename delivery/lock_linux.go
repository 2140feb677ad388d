package delivery

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openNoFollow makes opening a symbolic link fail.
const openNoFollow = syscall.O_NOFOLLOW

// tryLock takes an exclusive flock(2) lock on f and an open file
// description fcntl(2) write lock on the whole file, without waiting; it
// reports false when either is held elsewhere (taking neither then).
// Kernels without OFD locks (before 3.15) get the flock lock alone.
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
		if err := unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			if err != unix.EWOULDBLOCK && err != unix.EINTR {
				lerr = fmt.Errorf("flock: %w", err)
			}
			return
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
		switch err := unix.FcntlFlock(fd, unix.F_OFD_SETLK, &lk); err {
		case nil, unix.EINVAL:
			locked = true
		case unix.EAGAIN, unix.EACCES, unix.EINTR:
			unix.Flock(int(fd), unix.LOCK_UN)
		default:
			unix.Flock(int(fd), unix.LOCK_UN)
			lerr = fmt.Errorf("fcntl lock: %w", err)
		}
	})
	if err == nil {
		err = lerr
	}
	return locked, err
}
