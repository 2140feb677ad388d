package service

import (
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCmdRun(t *testing.T) {
	tests := []struct {
		name    string
		command string
		args    []string
		timeout time.Duration
		want    Status
	}{
		{name: "success", command: "/bin/true", want: Status{Exited: true, Code: 0}},
		{name: "failure", command: "/bin/false", want: Status{Exited: true, Code: 1}},
		{name: "exit code", command: "/bin/sh", args: []string{"-c", "exit 42"}, want: Status{Exited: true, Code: 42}},
		{name: "PATH lookup", command: "true", want: Status{Exited: true, Code: 0}},
		{name: "signal", command: "/bin/sh", args: []string{"-c", "kill -TERM $$"}, want: Status{Signaled: true, Signal: 15}},
		{name: "timeout", command: "/bin/sleep", args: []string{"10"}, timeout: 100 * time.Millisecond,
			want: Status{Signaled: true, Signal: 9, TimedOut: true}},
		{name: "no stdin", command: "/bin/sh", args: []string{"-c", "read line"}, want: Status{Exited: true, Code: 1}},
		{name: "environment is PATH only", command: "/bin/sh",
			args: []string{"-c", `test -z "$VSL_TEST_SECRET" && test -z "$HOME" && test -n "$PATH"`},
			want: Status{Exited: true, Code: 0}},
		{name: "large output is discarded", command: "/bin/sh", args: []string{"-c", "head -c 20000000 /dev/zero"},
			want: Status{Exited: true, Code: 0}},
	}
	t.Setenv("VSL_TEST_SECRET", "leaked")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Cmd{Name: "t", Command: tt.command, Args: tt.args, Timeout: tt.timeout}
			if c.Timeout == 0 {
				c.Timeout = 10 * time.Second
			}
			start := time.Now()
			got, err := c.Run(context.Background(), nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Run = %+v, want %+v", got, tt.want)
			}
			if tt.timeout > 0 && time.Since(start) > 5*time.Second {
				t.Fatalf("Run took %v with a timeout of %v", time.Since(start), tt.timeout)
			}
		})
	}
}

func TestCmdRunArgsReplaceDeclared(t *testing.T) {
	c := &Cmd{Name: "t", Command: "/bin/sh", Args: []string{"-c", "exit 3"}, Timeout: 5 * time.Second}
	for _, tt := range []struct {
		args []string
		want int
	}{
		{args: nil, want: 3},
		{args: []string{"-c", "exit 4"}, want: 4},
		{args: []string{}, want: 0}, // sh with no arguments reads /dev/null and exits 0
	} {
		got, err := c.Run(context.Background(), tt.args)
		if err != nil || got.Code != tt.want {
			t.Errorf("Run(%q) = %+v, %v; want code %d", tt.args, got, err, tt.want)
		}
	}
}

// TestCmdTimeoutKillsProcessGroup checks that the timeout kills the
// command's children too, not only the command.
func TestCmdTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	c := &Cmd{Name: "t", Command: "/bin/sh", Args: []string{"-c", `sleep 30 & echo $! > "$1"; wait`, "sh", pidFile},
		Timeout: 300 * time.Millisecond}
	st, err := c.Run(context.Background(), nil)
	if err != nil || !st.TimedOut {
		t.Fatalf("Run = %+v, %v; want a timeout", st, err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(data))
	deadline := time.Now().Add(3 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the command's child %s still runs after the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid string) bool {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestCmdRunContextCancelled(t *testing.T) {
	c := &Cmd{Name: "t", Command: "/bin/sleep", Args: []string{"10"}, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	st, err := c.Run(ctx, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %+v, %v; want the context's error", st, err)
	}
	if !st.Signaled || st.TimedOut {
		t.Errorf("status %+v: want killed by a signal, not counted as the command's own timeout", st)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Run took %v after its context ended", time.Since(start))
	}
}

func TestCmdRunStartError(t *testing.T) {
	c := &Cmd{Name: "t", Command: "/nonexistent/program", Timeout: time.Second}
	_, err := c.Run(context.Background(), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "starting /nonexistent/program: ") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Run error = %v, want a start error wrapping ErrNotExist", err)
	}
}

func TestCmdCredentialNeedsRoot(t *testing.T) {
	tests := []struct {
		user, group string
		want        string
	}{
		{user: "nobody", want: `cannot run /bin/true as user "nobody": switching credentials needs root, and this process runs as uid 1000`},
		{group: "nogroup", want: `cannot run /bin/true as group "nogroup": switching credentials needs root, and this process runs as uid 1000`},
		{user: "nobody", group: "nogroup", want: `cannot run /bin/true as user "nobody" and group "nogroup": switching credentials needs root, and this process runs as uid 1000`},
	}
	for _, tt := range tests {
		c := &Cmd{Command: "/bin/true", User: tt.user, Group: tt.group, Timeout: time.Second}
		cred, err := c.credential(1000)
		if err == nil || err.Error() != tt.want {
			t.Errorf("credential(1000) for %q/%q = %v, %v; want error %q", tt.user, tt.group, cred, err, tt.want)
		}
	}
	c := &Cmd{Command: "/bin/true", Timeout: time.Second}
	if cred, err := c.credential(1000); cred != nil || err != nil {
		t.Errorf("credential without user or group = %v, %v; want nil, nil", cred, err)
	}
}

func TestCmdRunsAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching credentials needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	check := `test "$(id -u)" = "$1" && test "$(id -g)" = "$2"`
	tests := []struct {
		name, user, group string
		uid, gid          string
	}{
		{name: "user", user: "nobody", uid: u.Uid, gid: u.Gid},
		{name: "uid", user: u.Uid, uid: u.Uid, gid: u.Gid},
		{name: "group only", group: "0", uid: "0", gid: "0"},
		{name: "user and group", user: "nobody", group: "0", uid: u.Uid, gid: "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Cmd{Name: "t", Command: "/bin/sh", Args: []string{"-c", check, "sh", tt.uid, tt.gid},
				User: tt.user, Group: tt.group, Timeout: 5 * time.Second}
			st, err := c.Run(context.Background(), nil)
			if err != nil || st.Code != 0 {
				t.Fatalf("Run = %+v, %v; want the command to see uid %s gid %s", st, err, tt.uid, tt.gid)
			}
		})
	}
	c := &Cmd{Command: "/bin/true", User: "no-such-user-" + strconv.Itoa(os.Getpid()), Timeout: time.Second}
	if _, err := c.Run(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "looking up user") {
		t.Errorf("Run with an unknown user: %v, want a look-up error", err)
	}
}
