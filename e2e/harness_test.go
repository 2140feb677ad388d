// Package e2e drives a real Postfix (the Debian package) through
// smtpd_milters to a real vsl-milter binary, with smtp-sink as the far end
// and swaks as the client. The tests need root, postfix, smtp-sink and
// swaks; without them they skip, unless VSL_E2E=1 (as in CI), where a
// missing tool is a failure. The delegation tests add a second private
// Postfix as the third-party filter of delegate directives (startFilter).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the vsl-milter binary built for the tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vsl-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "vsl-milter")
	out, err := exec.Command("go", "build", "-o", binary, "../cmd/vsl-milter").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building vsl-milter: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need skips the test when a tool is missing, or fails it under VSL_E2E=1.
func need(t *testing.T) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"postfix", "smtp-sink", "swaks", "postqueue"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				missing = append(missing, tool)
			}
		}
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "root (to run a private Postfix)")
	}
	if len(missing) == 0 {
		return
	}
	msg := "end-to-end tests need " + strings.Join(missing, ", ") + " (./test.sh installs them)"
	if os.Getenv("VSL_E2E") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// freePort returns a TCP port on loopback nobody listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// world is one private Postfix, its sink and a vsl-milter behind it.
type world struct {
	t          *testing.T
	dir        string // everything lives here (traversable by user postfix)
	smtpPort   int    // Postfix's smtpd
	sinkPort   int
	metrics    string // vsl-milter's metrics address
	socket     string
	config     string // vsl-milter's configuration file
	milter     *exec.Cmd
	milterLog  *syncBuffer
	maildirs   string
	postfixCfg string
	filterCfg  string // the filter Postfix's configuration (startFilter)
}

// newWorld starts smtp-sink, vsl-milter with the given rules (files
// written into the world's rules folder: name -> content) and extra
// configuration lines, and a private Postfix whose smtpd_milters is
// vsl-milter's unix socket.
func newWorld(t *testing.T, rules map[string]string, extraConfig string) *world {
	need(t)
	base, err := os.MkdirTemp("", "vsl-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	w := &world{t: t, dir: base, smtpPort: freePort(t), sinkPort: freePort(t), metrics: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	t.Cleanup(func() { w.stop() })
	for _, d := range []string{"etc", "queue", "data", "sink", "rules", "run", "maildirs", "app"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("user postfix: %v", err)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	for _, d := range []string{"data", "sink"} {
		os.Chown(filepath.Join(base, d), uid, -1)
	}
	w.maildirs = filepath.Join(base, "maildirs")
	w.socket = filepath.Join(base, "run", "milter.sock")
	for name, src := range rules {
		if err := os.WriteFile(filepath.Join(base, "rules", name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.config = filepath.Join(base, "vsmtp.toml")
	cfg := fmt.Sprintf(`version_requirement = ">=1.0.0"
[server]
domain = "mx.e2e.test"
[app]
dirpath = %q
[app.vsl]
filepath = "rules/main.vsl"
[milter]
listen = "unix:%s"
socket_group = "postfix"
stage_deadline = "5s"
[metrics]
listen = %q
[log]
level = "debug"
[delivery]
maildir_root = %q
%s`, filepath.Join(base, "app"), w.socket, w.metrics, w.maildirs, extraConfig)
	if err := os.WriteFile(w.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	sink := exec.Command("smtp-sink", "-u", "postfix", "-d", filepath.Join(base, "sink", "%M%S."), fmt.Sprintf("127.0.0.1:%d", w.sinkPort), "64")
	if err := sink.Start(); err != nil {
		t.Fatalf("smtp-sink: %v", err)
	}
	t.Cleanup(func() { sink.Process.Kill(); sink.Wait() })

	w.startMilter()
	w.startPostfix()
	return w
}

func (w *world) startMilter() {
	t := w.t
	w.milterLog = &syncBuffer{}
	w.milter = exec.Command(binary, "serve", "-c", w.config)
	w.milter.Stdout = w.milterLog
	w.milter.Stderr = w.milterLog
	if err := w.milter.Start(); err != nil {
		t.Fatalf("starting vsl-milter: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + w.metrics + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vsl-milter did not become ready: %v\n%s", err, w.milterLog)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *world) startPostfix() {
	w.postfixCfg = startPostfixInstance(w.t, w.dir, "mx.e2e.test", w.smtpPort, w.sinkPort, fmt.Sprintf(`smtpd_milters = unix:%s
non_smtpd_milters =
milter_protocol = 6
milter_default_action = tempfail
milter_connect_macros = j {daemon_name} {daemon_addr} {daemon_port} v _
`, w.socket))
}

// startPostfixInstance configures and starts a private Postfix whose
// directories are under dir (etc, queue, data; its log is
// dir/postfix.log): smtpd on 127.0.0.1:port, everything relayed to
// 127.0.0.1:relayPort, plus the extra main.cf lines. It returns its
// configuration directory.
func startPostfixInstance(t *testing.T, dir, hostname string, port, relayPort int, extra string) string {
	t.Helper()
	etc := filepath.Join(dir, "etc")
	master, err := os.ReadFile("/usr/share/postfix/master.cf.dist")
	if err != nil {
		t.Fatalf("postfix master.cf template: %v", err)
	}
	var mb strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(master))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "smtp ") && strings.Contains(l, " inet ") {
			l = "#" + l
		}
		mb.WriteString(l + "\n")
	}
	fmt.Fprintf(&mb, "127.0.0.1:%d inet n - n - - smtpd\n", port)
	if err := os.WriteFile(filepath.Join(etc, "master.cf"), []byte(mb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`compatibility_level = 3.7
queue_directory = %[1]s/queue
data_directory = %[1]s/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
myhostname = %[3]s
mydomain = e2e.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:%[2]d
smtpd_relay_restrictions = permit_mynetworks, reject
local_transport = error:5.1.1 local delivery disabled
alias_maps =
alias_database =
local_recipient_maps =
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
maillog_file = %[1]s/postfix.log
maillog_file_prefixes = %[1]s
%[4]s`, dir, relayPort, hostname, extra)
	if err := os.WriteFile(filepath.Join(etc, "main.cf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("postconf", "-c", etc, "-F", "*/*/chroot = n").CombinedOutput(); err != nil {
		t.Fatalf("postconf: %v\n%s", err, out)
	}
	if out, err := exec.Command("postfix", "-c", etc, "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "postfix.log"))
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, log)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return etc
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "postfix.log"))
			t.Fatalf("postfix did not listen: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startFilter starts a second private Postfix as the third-party filter of
// delegate directives: its smtpd listens on delegatorPort, applies
// headerChecks and bodyChecks (regexp tables: PREPEND, REPLACE, HOLD...)
// and relays every message back to vsl-milter's receiver on receiverPort.
// It runs no milter.
func (w *world) startFilter(delegatorPort, receiverPort int, headerChecks, bodyChecks string) {
	t := w.t
	dir := filepath.Join(w.dir, "filter")
	for _, d := range []string{"etc", "queue", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("user postfix: %v", err)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	os.Chown(filepath.Join(dir, "data"), uid, -1)
	for name, table := range map[string]string{"header_checks": headerChecks, "body_checks": bodyChecks} {
		if err := os.WriteFile(filepath.Join(dir, "etc", name), []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.filterCfg = startPostfixInstance(t, dir, "filter.e2e.test", delegatorPort, receiverPort, fmt.Sprintf(`header_checks = regexp:%[1]s/etc/header_checks
body_checks = regexp:%[1]s/etc/body_checks
smtpd_milters =
non_smtpd_milters =
`, dir))
}

func (w *world) stop() {
	if w.postfixCfg != "" {
		exec.Command("postfix", "-c", w.postfixCfg, "stop").Run()
	}
	if w.filterCfg != "" {
		exec.Command("postfix", "-c", w.filterCfg, "stop").Run()
	}
	if w.milter != nil && w.milter.Process != nil {
		w.milter.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { w.milter.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			w.milter.Process.Kill()
			<-done
		}
	}
	if w.t.Failed() {
		log, _ := os.ReadFile(filepath.Join(w.dir, "postfix.log"))
		w.t.Logf("postfix log:\n%s", log)
		if w.filterCfg != "" {
			log, _ := os.ReadFile(filepath.Join(w.dir, "filter", "postfix.log"))
			w.t.Logf("filter postfix log:\n%s", log)
		}
		if w.milterLog != nil {
			w.t.Logf("vsl-milter log:\n%s", w.milterLog)
		}
	}
	os.RemoveAll(w.dir)
}

// send sends one message with swaks and returns swaks' transcript.
func (w *world) send(from string, to []string, headers []string, body string) string {
	w.t.Helper()
	args := []string{"--server", fmt.Sprintf("127.0.0.1:%d", w.smtpPort), "--from", from, "--to", strings.Join(to, ","),
		"--helo", "client.e2e.test", "--timeout", "30", "--body", body, "--suppress-data"}
	for _, h := range headers {
		args = append(args, "--header", h)
	}
	out, _ := exec.Command("swaks", args...).CombinedOutput()
	return string(out)
}

// sunk is one message smtp-sink received.
type sunk struct {
	MailFrom string
	Rcpts    []string
	Headers  []string // "Name: value" lines of the message (unfolded as received)
	Body     string
}

// waitSink waits for a message at the sink whose headers contain marker.
func (w *world) waitSink(marker string) *sunk {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(w.dir, "sink", "*"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil || !bytes.Contains(data, []byte(marker)) {
				continue
			}
			return parseDump(data)
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("no message with %q reached the sink", marker)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// parseDump reads an smtp-sink dump: its X-Mail-Args/X-Rcpt-Args records,
// then the message.
func parseDump(data []byte) *sunk {
	s := &sunk{}
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	i := 0
	for ; i < len(lines); i++ {
		name, value, _ := strings.Cut(lines[i], ": ")
		if !sinkRecords[name] {
			break
		}
		switch name {
		case "X-Mail-Args":
			s.MailFrom = strings.Trim(strings.Fields(value)[0], "<>")
		case "X-Rcpt-Args":
			s.Rcpts = append(s.Rcpts, strings.Trim(strings.Fields(value)[0], "<>"))
		}
	}
	for ; i < len(lines) && lines[i] != ""; i++ {
		if (strings.HasPrefix(lines[i], " ") || strings.HasPrefix(lines[i], "\t")) && len(s.Headers) > 0 {
			s.Headers[len(s.Headers)-1] += " " + strings.TrimSpace(lines[i])
			continue
		}
		s.Headers = append(s.Headers, lines[i])
	}
	if i < len(lines) {
		s.Body = strings.Join(lines[i+1:], "\n")
	}
	return s
}

// sinkRecords are the records smtp-sink writes before the message.
var sinkRecords = map[string]bool{"X-Client-Addr": true, "X-Client-Proto": true, "X-Helo-Args": true, "X-Mail-Args": true, "X-Rcpt-Args": true}

// header returns the first header named name in a sunk message.
func (s *sunk) header(name string) (string, bool) {
	for _, h := range s.Headers {
		n, v, ok := strings.Cut(h, ":")
		if ok && strings.EqualFold(n, name) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// heldQueue returns the recipients of the messages in Postfix's hold queue.
func (w *world) heldQueue() [][]string {
	w.t.Helper()
	out, err := exec.Command("postqueue", "-c", w.postfixCfg, "-j").Output()
	if err != nil {
		w.t.Fatalf("postqueue -j: %v", err)
	}
	var held [][]string
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var m struct {
			Queue      string `json:"queue_name"`
			Recipients []struct {
				Address string `json:"address"`
			} `json:"recipients"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			w.t.Fatalf("postqueue -j output: %v", err)
		}
		if m.Queue != "hold" {
			continue
		}
		var rc []string
		for _, r := range m.Recipients {
			rc = append(rc, r.Address)
		}
		held = append(held, rc)
	}
	return held
}

// metricsText fetches vsl-milter's /metrics.
func (w *world) metricsText() string {
	w.t.Helper()
	resp, err := http.Get("http://" + w.metrics + "/metrics")
	if err != nil {
		w.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// reload sends SIGHUP to vsl-milter and waits until /metrics shows want
// (a line of the reload counter).
func (w *world) reload(want string) {
	w.t.Helper()
	w.milter.Process.Signal(syscall.SIGHUP)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if strings.Contains(w.metricsText(), want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.t.Fatalf("vsl-milter did not reload (%s):\n%s", want, w.milterLog)
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func sleep100() { time.Sleep(100 * time.Millisecond) }
