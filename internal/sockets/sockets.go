// Package sockets opens the listening sockets of vsl-milter's servers: TCP
// addresses and unix sockets with a chosen mode and owner, replacing a
// stale socket file safely. It knows nothing of the protocols spoken on
// them.
package sockets

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"time"
)

// UnixOptions say how a unix socket is created.
type UnixOptions struct {
	Mode  fs.FileMode // permission bits, e.g. 0660
	Owner string      // user name or uid; "" keeps the process's
	Group string      // group name or gid; "" keeps the process's
}

// Listen opens network ("tcp" or "unix") at address. A unix socket file
// left by a process that is gone is replaced; one that another process
// still answers on is an error, as is a path that is not a socket.
func Listen(network, address string, opts UnixOptions) (net.Listener, error) {
	if network != "unix" {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, fmt.Errorf("listening on %s: %w", address, err)
		}
		return ln, nil
	}
	if err := removeStale(address); err != nil {
		return nil, err
	}
	// Create the socket with no permissions for others from the start; the
	// final mode is set before anyone is told the socket exists.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", address)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on unix:%s: %w", address, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := setOwner(address, opts); err != nil {
		ln.Close()
		return nil, err
	}
	mode := opts.Mode
	if mode == 0 {
		mode = 0o660
	}
	if err := os.Chmod(address, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting the mode of unix:%s: %w", address, err)
	}
	return ln, nil
}

// removeStale removes a socket file nobody answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking unix:%s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("unix:%s exists and is not a socket: refusing to replace it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("unix:%s is in use by another process", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the stale socket unix:%s: %w", path, err)
	}
	return nil
}

// setOwner changes the socket's owner and group when asked.
func setOwner(path string, opts UnixOptions) error {
	if opts.Owner == "" && opts.Group == "" {
		return nil
	}
	uid, gid := -1, -1
	if opts.Owner != "" {
		id, err := lookupID(opts.Owner, func(n string) (string, error) {
			u, err := user.Lookup(n)
			if err != nil {
				return "", err
			}
			return u.Uid, nil
		})
		if err != nil {
			return fmt.Errorf("socket owner %q: %w", opts.Owner, err)
		}
		uid = id
	}
	if opts.Group != "" {
		id, err := lookupID(opts.Group, func(n string) (string, error) {
			g, err := user.LookupGroup(n)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		})
		if err != nil {
			return fmt.Errorf("socket group %q: %w", opts.Group, err)
		}
		gid = id
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("setting the owner of unix:%s: %w", path, err)
	}
	return nil
}

// lookupID reads a numeric id, or looks a name up.
func lookupID(s string, lookup func(string) (string, error)) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, nil
	}
	id, err := lookup(s)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(id)
}

// AcceptRetry tells a server's accept loop what to do with err, an error
// of Accept: retry after the returned wait when the error is temporary
// (out of file descriptors and the like; the wait doubles from 5 ms to 1 s
// after last, as net/http's does), or stop (ok false).
func AcceptRetry(err error, last time.Duration) (wait time.Duration, ok bool) {
	var ne net.Error
	if !(errors.As(err, &ne) && ne.Timeout() ||
		errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED)) {
		return 0, false
	}
	return min(max(2*last, 5*time.Millisecond), time.Second), true
}
