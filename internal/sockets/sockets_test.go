package sockets

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "milter.sock")
	ln, err := Listen("unix", path, UnixOptions{Mode: 0o660, Group: "0"})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %v, want 0660", fi.Mode().Perm())
	}
	// A second server on the same path is refused while the first answers.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := Listen("unix", path, UnixOptions{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second listener: %v, want 'in use'", err)
	}
	ln.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("closing the listener should remove the socket: %v", err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stale.sock")
	// Leave a socket file behind, as a killed process does.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	ln, err := Listen("unix", path, UnixOptions{})
	if err != nil {
		t.Fatalf("a stale socket should be replaced: %v", err)
	}
	ln.Close()
}

func TestNotASocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix", path, UnixOptions{}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("got %v, want 'not a socket'", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the file must be left alone: %v", err)
	}
}

func TestUnknownOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.sock")
	_, err := Listen("unix", path, UnixOptions{Owner: "no-such-user-xyz"})
	if err == nil || !strings.Contains(err.Error(), `socket owner "no-such-user-xyz"`) {
		t.Fatalf("got %v", err)
	}
}

func TestTCP(t *testing.T) {
	ln, err := Listen("tcp", "127.0.0.1:0", UnixOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if !strings.HasPrefix(ln.Addr().String(), "127.0.0.1:") {
		t.Errorf("addr %s", ln.Addr())
	}
}

// TestAcceptRetry checks which Accept errors a server retries, and after
// how long.
func TestAcceptRetry(t *testing.T) {
	if _, ok := AcceptRetry(net.ErrClosed, 0); ok {
		t.Error("a closed listener is retried")
	}
	wait, ok := AcceptRetry(&os.SyscallError{Syscall: "accept4", Err: syscall.EMFILE}, 0)
	if !ok || wait != 5*time.Millisecond {
		t.Errorf("EMFILE: %v %v, want a retry after 5ms", wait, ok)
	}
	if wait, _ := AcceptRetry(syscall.ECONNABORTED, 800*time.Millisecond); wait != time.Second {
		t.Errorf("the wait after 800ms is %v, want the 1s cap", wait)
	}
}
