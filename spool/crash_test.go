//go:build unix

package spool_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/delivery"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/spool"
)

// The helper process's environment.
const (
	crashMode  = "SPOOL_CRASH_MODE"  // "load" or "drain"
	crashDir   = "SPOOL_CRASH_DIR"   // the test's directory
	crashStart = "SPOOL_CRASH_START" // the first message number of a load
	crashSeed  = "SPOOL_CRASH_SEED"  // the helper's random seed
)

// crashRules deliver one recipient into a maildir; the other goes by MX
// to the helper's sink.
const crashRules = `#{ delivery: [ action "route" || for r in rcpt_list() { if r.domain == "local.test" { maildir(r) } } ] }`

var crashIDRe = regexp.MustCompile(`<crash-(\d+)@test>`)

// TestCrash kills a process that enqueues and delivers messages with
// SIGKILL at random points, several times, restarting it on the same
// spool each time; a last run drains the spool. Every message whose
// Enqueue returned nil must then have been delivered to both recipients at
// least once. The duplicates (deliveries done but not yet recorded when
// the process died) are reported.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash test runs helper processes")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SPOOL_CRASH_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (set SPOOL_CRASH_TEST_SEED to repeat, SPOOL_CRASH_ROUNDS for more kills)", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()

	rounds := 10
	if n, err := strconv.Atoi(os.Getenv("SPOOL_CRASH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	acked := map[int]bool{}
	for round := range rounds {
		cmd, out := crashHelper(t, dir, "load", round*1_000_000, rng.Uint64())
		var (
			mu    sync.Mutex
			lines []int
			first = make(chan struct{})
			done  = make(chan struct{})
		)
		go func() {
			defer close(done)
			r := bufio.NewReader(out)
			once := sync.OnceFunc(func() { close(first) })
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return // a line cut by the kill has no newline: not acknowledged
				}
				if n, ok := strings.CutPrefix(strings.TrimSpace(line), "acked "); ok {
					v, err := strconv.Atoi(n)
					if err == nil {
						mu.Lock()
						lines = append(lines, v)
						mu.Unlock()
						once()
					}
				}
			}
		}()
		// Kill at a random point: mostly while it enqueues and delivers,
		// sometimes early, while it may still be recovering.
		if rng.IntN(4) == 0 {
			time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		} else {
			select {
			case <-first:
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the helper acknowledged nothing in 30s")
			}
			time.Sleep(time.Duration(20+rng.IntN(400)) * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("round %d: kill: %v", round, err)
		}
		<-done
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the helper did not die by SIGKILL: %v\n%s", round, err, cmd.Stderr)
		}
		mu.Lock()
		for _, n := range lines {
			acked[n] = true
		}
		t.Logf("round %d: %d messages acknowledged before the kill", round, len(lines))
		mu.Unlock()
	}

	cmd, out := crashHelper(t, dir, "drain", 0, rng.Uint64())
	go io.Copy(io.Discard, out)
	werr := make(chan error, 1)
	go func() { werr <- cmd.Wait() }()
	select {
	case err := <-werr:
		if err != nil {
			t.Fatalf("drain: %v\n%s", err, cmd.Stderr)
		}
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the spool did not drain in 90s\n%s", cmd.Stderr)
	}

	maildir := countIDs(t, filepath.Join(dir, "maildirs", "local.test", "u1", "new"))
	sinkLog, err := os.ReadFile(filepath.Join(dir, "sink.log"))
	if err != nil {
		t.Fatal(err)
	}
	sunk := map[int]int{}
	for _, m := range crashIDRe.FindAllSubmatch(sinkLog, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		sunk[n]++
	}
	lost, dupMaildir, dupMX := 0, 0, 0
	for n := range acked {
		if maildir[n] == 0 || sunk[n] == 0 {
			lost++
			if lost <= 10 {
				t.Errorf("message %d was acknowledged but not delivered (maildir %d, MX %d)", n, maildir[n], sunk[n])
			}
		}
	}
	for _, c := range maildir {
		dupMaildir += max(c-1, 0)
	}
	for _, c := range sunk {
		dupMX += max(c-1, 0)
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged messages lost", lost, len(acked))
	}
	if len(acked) == 0 {
		t.Error("no message was acknowledged: the test tested nothing")
	}
	for _, q := range []string{spool.QueueIncoming, spool.QueueWorking, spool.QueueDeferred, spool.QueueDead} {
		if ents, _ := os.ReadDir(filepath.Join(dir, "spool", q)); len(ents) != 0 {
			t.Errorf("%s still holds %d messages after the drain", q, len(ents))
		}
	}
	t.Logf("%d kills; %d messages acknowledged, %d delivered to the maildir (%d duplicate copies), %d by MX (%d duplicate copies); %d lost",
		rounds, len(acked), len(maildir), dupMaildir, len(sunk), dupMX, lost)
}

// crashHelper starts this test binary as a helper process.
func crashHelper(t *testing.T, dir, mode string, start int, seed uint64) (*exec.Cmd, io.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1", "-test.timeout=150s")
	cmd.Env = append(os.Environ(), crashMode+"="+mode, crashDir+"="+dir,
		crashStart+"="+strconv.Itoa(start), crashSeed+"="+strconv.FormatUint(seed, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &lockedWriter{w: &stderr}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, out
}

// lockedWriter serialises writes (exec copies stderr on its own goroutine).
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// countIDs counts the crash message ids of the files in dir.
func countIDs(t *testing.T, dir string) map[int]int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int]int{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if m := crashIDRe.FindSubmatch(b); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			counts[n]++
		}
	}
	return counts
}

// TestCrashHelper is the helper process of TestCrash; it does nothing in
// a normal test run.
func TestCrashHelper(t *testing.T) {
	mode := os.Getenv(crashMode)
	if mode == "" {
		t.Skip("helper process of TestCrash")
	}
	dir := os.Getenv(crashDir)
	seed, _ := strconv.ParseUint(os.Getenv(crashSeed), 10, 64)
	rng := rand.New(rand.NewPCG(seed, 2))
	var rngMu sync.Mutex
	chance := func(n int) bool {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.IntN(n) == 0
	}

	// The remote recipient's MX: it writes each message's id to sink.log
	// and fsyncs before its 250, and answers one RCPT in five with 451.
	logf, err := os.OpenFile(filepath.Join(dir, "sink.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	idRe := regexp.MustCompile(`(?m)^Message-ID: (<[^>]*>)`)
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &crashSink{
			rcpt: func() error {
				if chance(5) {
					return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
				}
				return nil
			},
			data: func(b []byte) error {
				m := idRe.FindSubmatch(b)
				if m == nil {
					return nil // a DSN or another message: not counted
				}
				logMu.Lock()
				defer logMu.Unlock()
				if _, err := logf.Write(append(m[1], '\n')); err != nil {
					return err
				}
				return logf.Sync()
			},
		}, nil
	}))
	srv.Domain = "sink.test"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)

	maildirs := filepath.Join(dir, "maildirs")
	os.MkdirAll(maildirs, 0o700)
	agent, err := delivery.New(delivery.Options{MaildirRoot: maildirs, Hostname: "mx.test", ForwardTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := policy.Load("crash.vsl", []byte(crashRules), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(spool.Options{
		Dir: filepath.Join(dir, "spool"), AppDir: filepath.Join(dir, "app"),
		Rules: func() *policy.Rules { return rules }, Agent: agent,
		Resolver: fakeMX{"remote.test": {{Host: ln.Addr().String(), Pref: 10}}},
		Hostname: "mx.test", RetryPeriod: 20 * time.Millisecond, RetryMax: 100000, Workers: 4,
		Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- sp.Run(ctx) }()

	switch mode {
	case "load":
		start, _ := strconv.Atoi(os.Getenv(crashStart))
		deadline := time.Now().Add(60 * time.Second) // the parent kills it long before
		for n := start; time.Now().Before(deadline); n++ {
			s := policy.Saved{
				ServerName: "mx.test", Helo: "client.test", ConnectedAt: time.Now(), MailAt: time.Now(),
				MailFrom: addr("s@remote.test"), Rcpts: []policy.MailAddr{addr("u1@local.test"), addr("u2@remote.test")},
				MessageID: policy.NewMessageID(),
			}
			rngMu.Lock()
			lines := rng.IntN(400)
			pause := time.Duration(rng.IntN(3000)) * time.Microsecond
			rngMu.Unlock()
			msg := fmt.Sprintf("From: s@remote.test\r\nTo: u1@local.test, u2@remote.test\r\nMessage-ID: <crash-%d@test>\r\nSubject: %d\r\n\r\n%s\r\n",
				n, n, strings.Repeat(strings.Repeat("x", 76)+"\r\n", lines))
			if _, err := sp.Enqueue(ctx, s, []byte(msg)); err != nil {
				fmt.Fprintf(os.Stderr, "enqueue %d: %v\n", n, err)
				os.Exit(2)
			}
			// One write: the parent counts only whole lines.
			os.Stdout.WriteString("acked " + strconv.Itoa(n) + "\n")
			time.Sleep(pause)
		}
		os.Exit(3)
	case "drain":
		deadline := time.Now().Add(80 * time.Second)
		for {
			st := sp.Stats()
			if st[spool.QueueIncoming]+st[spool.QueueWorking]+st[spool.QueueDeferred] == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not drained: %v", st)
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-ran
		sp.Close()
		srv.Close()
		if st := sp.Stats(); st[spool.QueueDead] != 0 {
			t.Fatalf("dead messages after the drain: %v", st)
		}
	default:
		t.Fatalf("unknown mode %q", mode)
	}
}

// crashSink is the helper's SMTP session.
type crashSink struct {
	rcpt func() error
	data func([]byte) error
}

func (s *crashSink) Reset()                               {}
func (s *crashSink) Logout() error                        { return nil }
func (s *crashSink) Mail(string, *smtp.MailOptions) error { return nil }
func (s *crashSink) Rcpt(string, *smtp.RcptOptions) error { return s.rcpt() }
func (s *crashSink) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return s.data(b)
}
