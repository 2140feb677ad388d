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
	for _, f := range []string{"main.vsl", "objects.vsl", "blacklist.txt"} {
		b, err := os.ReadFile(filepath.Join("..", "contrib", "examples", "doe-family", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(base, "rules", f), b, 0o644)
	}
	smtpPort, sinkPort, metricsAddr := freePort(t), freePort(t), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := fmt.Sprintf(`version_requirement = ">=1.0.0"
[server]
domain = "doe-family.com"
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
`, smtpPort, filepath.Join(base, "spool"), filepath.Join(base, "app"), metricsAddr, filepath.Join(base, "maildirs"), sinkPort)
	cfgPath := filepath.Join(base, "vsmtp.toml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)

	sink := exec.Command("smtp-sink", "-u", "postfix", "-d", filepath.Join(base, "sink", "%M%S."), fmt.Sprintf("127.0.0.1:%d", sinkPort), "64")
	if err := sink.Start(); err != nil {
		t.Fatalf("smtp-sink: %v", err)
	}
	t.Cleanup(func() { sink.Process.Kill(); sink.Wait() })

	logs := &syncBuffer{}
	srv := exec.Command(binary, "serve", "-c", cfgPath)
	srv.Stdout, srv.Stderr = logs, logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
		if t.Failed() {
			t.Logf("vsl-milter log:\n%s", logs)
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
			t.Fatalf("vsl-milter did not become ready:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	send := func(from string, to []string, subject string) string {
		out, _ := exec.Command("swaks", "--server", fmt.Sprintf("127.0.0.1:%d", smtpPort), "--from", from,
			"--to", strings.Join(to, ","), "--helo", "client.e2e.test", "--header", "Subject: "+subject,
			"--body", "love", "--timeout", "30").CombinedOutput()
		return string(out)
	}

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
