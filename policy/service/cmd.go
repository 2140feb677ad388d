package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// DefaultCmdTimeout is the timeout of a cmd service that gives none
// (vSMTP's default).
const DefaultCmdTimeout = 30 * time.Second

// cmdPath is the whole environment of a command: PATH and nothing else, so
// that nothing of the daemon's environment leaks to third-party programs.
const cmdPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Cmd is a cmd service: a program run directly, without a shell, with its
// standard input, output and error on /dev/null. Do not change a Cmd once
// it is in use.
type Cmd struct {
	Name    string        // the service's name (v2: the command)
	Command string        // an absolute path, or a program name looked up in PATH
	Args    []string      // the arguments .run() passes
	Timeout time.Duration // the whole process group is killed after it
	User    string        // optional: run as this user (name or uid); needs root
	Group   string        // optional: run with this group (name or gid); needs root
}

// buildCmd builds a cmd service from its parameter map.
func buildCmd(name string, v vsl.Value, _ dialect) (*Cmd, error) {
	o, err := newOptions(v, "the parameters of a cmd service")
	if err != nil {
		return nil, err
	}
	c := &Cmd{Name: name}
	if c.Command, _, err = o.str("command", true); err != nil {
		return nil, err
	}
	if c.Args, _, err = o.strs("args"); err != nil {
		return nil, err
	}
	if c.Timeout, err = o.duration("timeout", DefaultCmdTimeout); err != nil {
		return nil, err
	}
	if c.User, _, err = o.str("user", false); err != nil {
		return nil, err
	}
	if c.Group, _, err = o.str("group", false); err != nil {
		return nil, err
	}
	if err := o.done(); err != nil {
		return nil, err
	}
	switch {
	case c.Command == "":
		return nil, errors.New(`key "command" is empty`)
	case strings.ContainsRune(c.Command, 0):
		return nil, errors.New(`key "command" contains a NUL byte`)
	case strings.Contains(c.Command, "/") && !filepath.IsAbs(c.Command):
		return nil, fmt.Errorf("command %q must be an absolute path or a bare program name looked up in PATH", c.Command)
	}
	if c.Name == "" {
		c.Name = c.Command
	}
	return c, nil
}

// TypeName returns "cmd".
func (c *Cmd) TypeName() string { return TypeCmd }

// String returns "service NAME (cmd)".
func (c *Cmd) String() string { return "service " + c.Name + " (cmd)" }

// Equal reports whether other is this very service.
func (c *Cmd) Equal(other vsl.Value) (bool, bool) { return sameHost(c, other) }

// Attr exposes the declaration to scripts: name, command, args, timeout,
// user and group.
func (c *Cmd) Attr(name string) (vsl.Value, bool, error) {
	switch name {
	case "name":
		return vsl.String(c.Name), true, nil
	case "command":
		return vsl.String(c.Command), true, nil
	case "args":
		return stringsValue(c.Args), true, nil
	case "timeout":
		return vsl.String(c.Timeout.String()), true, nil
	case "user":
		return optString(c.User), true, nil
	case "group":
		return optString(c.Group), true, nil
	}
	return vsl.Value{}, false, nil
}

// Status is how a command ended.
type Status struct {
	Exited   bool // the command exited (Code is valid)
	Code     int
	Signaled bool // the command was killed by a signal (Signal is valid)
	Signal   int
	TimedOut bool // the timeout passed and the process group was killed
}

// Value returns the status as scripts see it: #{has_code, code, has_signal,
// signal, timed_out}, with code or signal () when absent, as in vSMTP.
func (s Status) Value() vsl.Value {
	code, signal := vsl.Unit(), vsl.Unit()
	if s.Exited {
		code = vsl.Int(int64(s.Code))
	}
	if s.Signaled {
		signal = vsl.Int(int64(s.Signal))
	}
	return vsl.NewMap(map[string]vsl.Value{
		"has_code":   vsl.Bool(s.Exited),
		"code":       code,
		"has_signal": vsl.Bool(s.Signaled),
		"signal":     signal,
		"timed_out":  vsl.Bool(s.TimedOut),
	})
}

// Run runs the command with args (nil: the declared Args) and waits for it
// to end, at most Timeout (DefaultCmdTimeout when not positive): then the whole process group is killed with
// SIGKILL and the status says TimedOut. The command gets no standard input,
// its output is discarded, its environment is PATH only, and it starts in
// its own process group. When ctx ends first the group is killed too and
// Run returns ctx's error. Exiting non-zero or by a signal is not an error.
func (c *Cmd) Run(ctx context.Context, args []string) (Status, error) {
	if args == nil {
		args = c.Args
	}
	cred, err := c.credential(os.Geteuid())
	if err != nil {
		return Status{}, err
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCmdTimeout
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(tctx, c.Command, args...)
	cmd.Env = []string{cmdPath}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.Cancel = func() error {
		// The child leads its own group (Setpgid): kill every member.
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return os.ErrProcessDone
			}
			return err
		}
		return nil
	}
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	ps := cmd.ProcessState
	if ps == nil {
		return Status{}, fmt.Errorf("starting %s: %w", c.Command, err)
	}
	var st Status
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		if ws.Exited() {
			st.Exited, st.Code = true, ws.ExitStatus()
		}
		if ws.Signaled() {
			st.Signaled, st.Signal = true, int(ws.Signal())
		}
	} else {
		st.Exited, st.Code = true, ps.ExitCode()
	}
	if ctx.Err() != nil {
		return st, fmt.Errorf("running %s: %w", c.Command, ctx.Err())
	}
	st.TimedOut = tctx.Err() != nil && st.Signaled
	return st, nil
}

// credential returns the credentials to run under, or nil to keep ours.
// Switching needs root: with a user or group set and euid not 0 it fails.
func (c *Cmd) credential(euid int) (*syscall.Credential, error) {
	if c.User == "" && c.Group == "" {
		return nil, nil
	}
	if euid != 0 {
		return nil, fmt.Errorf("cannot run %s as %s: switching credentials needs root, and this process runs as uid %d", c.Command, c.whom(), euid)
	}
	cred := &syscall.Credential{Uid: uint32(euid), Gid: uint32(os.Getegid()), Groups: []uint32{}}
	if c.User != "" {
		u, err := lookupUser(c.User)
		if err != nil {
			return nil, err
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("user %q: %w", c.User, err)
		}
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
		cred.Groups = []uint32{uint32(gid)}
		if ids, err := u.GroupIds(); err == nil {
			cred.Groups = cred.Groups[:0]
			for _, id := range ids {
				if n, err := strconv.ParseUint(id, 10, 32); err == nil {
					cred.Groups = append(cred.Groups, uint32(n))
				}
			}
		}
	}
	if c.Group != "" {
		g, err := lookupGroup(c.Group)
		if err != nil {
			return nil, err
		}
		gid, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("group %q: %w", c.Group, err)
		}
		cred.Gid = uint32(gid)
	}
	return cred, nil
}

func (c *Cmd) whom() string {
	switch {
	case c.User != "" && c.Group != "":
		return fmt.Sprintf("user %q and group %q", c.User, c.Group)
	case c.User != "":
		return fmt.Sprintf("user %q", c.User)
	}
	return fmt.Sprintf("group %q", c.Group)
}

// lookupUser finds a user by name, or by uid when s is a number.
func lookupUser(s string) (*user.User, error) {
	u, err := user.Lookup(s)
	if err == nil {
		return u, nil
	}
	if _, nerr := strconv.ParseUint(s, 10, 32); nerr == nil {
		if u, err := user.LookupId(s); err == nil {
			return u, nil
		}
	}
	return nil, fmt.Errorf("looking up user %q: %w", s, err)
}

// lookupGroup finds a group by name, or by gid when s is a number.
func lookupGroup(s string) (*user.Group, error) {
	g, err := user.LookupGroup(s)
	if err == nil {
		return g, nil
	}
	if _, nerr := strconv.ParseUint(s, 10, 32); nerr == nil {
		if g, err := user.LookupGroupId(s); err == nil {
			return g, nil
		}
	}
	return nil, fmt.Errorf("looking up group %q: %w", s, err)
}

// cmdRun is the builtin behind cmd.run() and cmd.run(args).
func cmdRun(call *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	if len(args) == 0 || len(args) > 2 {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	c, ok := args[0].AsHost().(*Cmd)
	if !ok {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	var argv []string
	if len(args) == 2 {
		if args[1].Kind() != vsl.KindArray {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		var err error
		if argv, err = stringArray(args[1]); err != nil {
			return vsl.Value{}, fmt.Errorf("the arguments of %s: %w", c, err)
		}
	}
	ctx := context.Background()
	if call != nil && call.Thread() != nil {
		ctx = call.Thread().Context() // the script's deadline also bounds the command
	}
	st, err := c.Run(ctx, argv)
	if err != nil {
		return vsl.Value{}, fmt.Errorf("%s: %w", c, err)
	}
	return st.Value(), nil
}

func stringsValue(s []string) vsl.Value {
	elems := make([]vsl.Value, len(s))
	for i, x := range s {
		elems[i] = vsl.String(x)
	}
	return vsl.NewArray(elems)
}

func optString(s string) vsl.Value {
	if s == "" {
		return vsl.Unit()
	}
	return vsl.String(s)
}
