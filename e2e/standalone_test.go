package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStandaloneDoeFamily runs vsl-milter as the SMTP server itself (no
// Postfix), milter off, with the Doe family rules: swaks is the client,
// family members get maildir copies written from the spool, the others are
// delivered by MX (pointed at smtp-sink by [resolver] mx), the blacklist is
// refused with the deny reply of SEMANTICS §9.
func TestStandaloneDoeFamily(t *testing.T) {
	rules := map[string]string{}
	for _, f := range []string{"main.vsl", "objects.vsl", "blacklist.txt"} {
		b, err := os.ReadFile(filepath.Join("..", "contrib", "examples", "doe-family", f))
		if err != nil {
			t.Fatal(err)
		}
		rules[f] = string(b)
	}
	sa := startStandalone(t, "doe-family.com", rules)
	base, send := sa.base, sa.send
	out := send("promo@spam-domain.org", []string{"john.doe@doe-family.com"}, "spam")
	if !strings.Contains(out, "<** 554 permanent problems with the remote server") {
		t.Errorf("a blacklisted sender should get vSMTP's deny reply:\n%s", out)
	}
	out = send("grandma@example.org", []string{"jenny.doe@doe-family.com", "bob@example.net"}, "standalone e2e")
	if !strings.Contains(out, "<-  250 Ok") || !strings.Contains(out, "<-  220 doe-family.com Service ready") {
		t.Errorf("the dialogue should use vSMTP's replies:\n%s", out)
	}
	m := waitDump(t, filepath.Join(base, "sink"), "standalone e2e")
	if strings.Join(m.Rcpts, ",") != "bob@example.net" {
		t.Errorf("the MX delivery should carry only bob@; got %v", m.Rcpts)
	}
	for _, who := range []string{"jenny.doe", "jane.doe"} {
		var files []string
		for i := 0; i < 100 && len(files) == 0; i++ {
			files, _ = filepath.Glob(filepath.Join(base, "maildirs", "doe-family.com", who, "new", "*"))
			time.Sleep(100 * time.Millisecond)
		}
		if len(files) != 1 {
			t.Errorf("%s: %d message(s) in the maildir, want 1", who, len(files))
		}
	}
}

// waitDump waits for an smtp-sink dump in dir whose text holds marker.
func waitDump(t *testing.T, dir, marker string) *sunk {
	t.Helper()
	for i := 0; i < 200; i++ {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), marker) {
				return parseDump(b)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no message with %q reached the sink", marker)
	return nil
}

// standalone is a vsl-milter serving SMTP itself, milter off, with MX
// deliveries pointed at an smtp-sink.
type standalone struct {
	base     string // its directory: rules/, spool/, app/, maildirs/, sink/
	smtpPort int
	logs     *syncBuffer
}

// startStandalone starts smtp-sink and vsl-milter in standalone mode with
// the given rule files; "example.net" is delivered by MX to the sink.
func startStandalone(t *testing.T, domain string, rules map[string]string) *standalone {
	t.Helper()
	need(t)
	base, err := os.MkdirTemp("", "vsl-e2e-standalone-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	t.Cleanup(func() { os.RemoveAll(base) })
	for _, d := range []string{"rules", "spool", "app", "maildirs", "sink"} {
		os.MkdirAll(filepath.Join(base, d), 0o755)
	}
	if pf, err := user.Lookup("postfix"); err == nil {
		uid, _ := strconv.Atoi(pf.Uid)
		os.Chown(filepath.Join(base, "sink"), uid, -1)
	}
	for f, src := range rules {
		os.WriteFile(filepath.Join(base, "rules", f), []byte(src), 0o644)
	}
	sa := &standalone{base: base, smtpPort: freePort(t), logs: &syncBuffer{}}
	sinkPort, metricsAddr := freePort(t), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := fmt.Sprintf(`version_requirement = ">=1.0.0"
[server]
domain = %q
[server.interfaces]
addr = ["127.0.0.1:%d"]
[server.queues]
dirpath = %q
[app]
dirpath = %q
[app.vsl]
filepath = "rules/main.vsl"
[milter]
listen = "off"
[metrics]
listen = %q
[delivery]
maildir_root = %q
[resolver]
mx = { "example.net" = "127.0.0.1:%d" }
`, domain, sa.smtpPort, filepath.Join(base, "spool"), filepath.Join(base, "app"), metricsAddr, filepath.Join(base, "maildirs"), sinkPort)
	cfgPath := filepath.Join(base, "vsmtp.toml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)

	sink := exec.Command("smtp-sink", "-u", "postfix", "-d", filepath.Join(base, "sink", "%M%S."), fmt.Sprintf("127.0.0.1:%d", sinkPort), "64")
	if err := sink.Start(); err != nil {
		t.Fatalf("smtp-sink: %v", err)
	}
	t.Cleanup(func() { sink.Process.Kill(); sink.Wait() })

	srv := exec.Command(binary, "serve", "-c", cfgPath)
	srv.Stdout, srv.Stderr = sa.logs, sa.logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
		if t.Failed() {
			t.Logf("vsl-milter log:\n%s", sa.logs)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + metricsAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vsl-milter did not become ready:\n%s", sa.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return sa
}

// send sends one message with swaks and returns its transcript.
func (sa *standalone) send(from string, to []string, subject string) string {
	out, _ := exec.Command("swaks", "--server", fmt.Sprintf("127.0.0.1:%d", sa.smtpPort), "--from", from,
		"--to", strings.Join(to, ","), "--helo", "client.e2e.test", "--header", "Subject: "+subject,
		"--body", "love", "--timeout", "30").CombinedOutput()
	return string(out)
}

// TestStandaloneDelegation: standalone mode hands the message from its
// spool to a second, private Postfix used as the content filter, which
// marks it and relays it back to the receiver; the rules resume on the
// returned message and the MX copy at the sink carries the filter's mark.
func TestStandaloneDelegation(t *testing.T) {
	delegator, receiver := freePort(t), freePort(t)
	rules := fmt.Sprintf(delegationRules, delegator, "20s", receiver)
	sa := startStandalone(t, "mx.e2e.test", map[string]string{"main.vsl": rules})
	filterDir := filepath.Join(sa.base, "filter")
	for _, d := range []string{"etc", "queue", "data"} {
		os.MkdirAll(filepath.Join(filterDir, d), 0o755)
	}
	if pf, err := user.Lookup("postfix"); err == nil {
		uid, _ := strconv.Atoi(pf.Uid)
		os.Chown(filepath.Join(filterDir, "data"), uid, -1)
	}
	os.WriteFile(filepath.Join(filterDir, "etc", "header_checks"), []byte(filterHeaderChecks), 0o644)
	os.WriteFile(filepath.Join(filterDir, "etc", "body_checks"), []byte(filterBodyChecks), 0o644)
	filterCfg := startPostfixInstance(t, filterDir, "filter.e2e.test", delegator, receiver, fmt.Sprintf(`header_checks = regexp:%[1]s/etc/header_checks
body_checks = regexp:%[1]s/etc/body_checks
smtpd_milters =
non_smtpd_milters =
`, filterDir))
	t.Cleanup(func() { exec.Command("postfix", "-c", filterCfg, "stop").Run() })

	out := sa.send("alice@example.org", []string{"bob@example.net"}, "standalone delegation e2e")
	if !strings.Contains(out, "<-  250 Ok") {
		t.Fatalf("the message should be accepted:\n%s", out)
	}
	m := waitDump(t, filepath.Join(sa.base, "sink"), "standalone delegation e2e")
	if v, _ := m.header("X-Filtered"); v != "yes" {
		t.Errorf("X-Filtered %q: the filter's header did not arrive; headers %v", v, m.Headers)
	}
	if v, _ := m.header("X-After-Delegate"); v != "saw-filter" {
		t.Errorf("X-After-Delegate %q: the rule after the directive did not see the returned message", v)
	}
	if _, ok := m.header("X-VSMTP-DELEGATION"); ok {
		t.Error("the delegation header must not reach the recipient")
	}
}
