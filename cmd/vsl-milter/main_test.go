package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCmd runs the command line args and returns its exit status and output.
func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckExample(t *testing.T) {
	code, out, errs := runCmd("check", "-c", "../../contrib/examples/doe-family/vsmtp.toml")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errs)
	}
	if !strings.Contains(out, "main.vsl: ok, 3 directive(s), 0 warning(s)") {
		t.Errorf("output %q", out)
	}
	// The Doe family's delivery stage reads nothing of the message.
	want := "milter: connect off, helo off, mail answered, rcpt one-way, data answered (the delivery stage runs there), header and body one-way, end of message answered\n"
	if !strings.HasSuffix(out, want) {
		t.Errorf("output %q, want it to end with %q", out, want)
	}
}

func TestCheckErrorsAndWarnings(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("bad.vsl", "#{\n  mail: [ rule \"x\" || if mail_from() == { deny() } ],\n  rcpt: [ rule \"y\" || nope() ],\n}\n")
	cfg := write("bad.toml", "[app.vsl]\nfilepath = \"bad.vsl\"\n")
	code, _, errs := runCmd("check", "-c", cfg)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errs)
	}
	if !strings.Contains(errs, filepath.Join(dir, "bad.vsl")+":2:") || !strings.Contains(errs, "^") {
		t.Errorf("the error should name bad.vsl:2:col with a caret:\n%s", errs)
	}

	write("warn.vsl", "#{\n  connect: [ rule \"early\" || if rcpt() == \"a@b.c\" { deny() } else { next() } ],\n}\n")
	cfg = write("warn.toml", "[app.vsl]\nfilepath = \"warn.vsl\"\n")
	code, out, errs := runCmd("check", "-c", cfg)
	if code != 0 {
		t.Fatalf("warnings only: exit %d, want 0; stderr:\n%s", code, errs)
	}
	if !strings.Contains(errs, "warn.vsl:2:33: warning: rcpt() is never available in stage connect") || !strings.Contains(out, "1 warning(s)") {
		t.Errorf("warning not reported:\nstdout %s\nstderr %s", out, errs)
	}

	cfg = write("unknown.toml", "[app.vsl]\nfilepath = \"warn.vsl\"\nflavour = \"x\"\n")
	if code, _, errs := runCmd("check", "-c", cfg); code != 1 || !strings.Contains(errs, "flavour") {
		t.Errorf("an unknown key: exit %d, stderr %s", code, errs)
	}
}

func TestTestJSON(t *testing.T) {
	code, out, errs := runCmd("test", "-c", "../../contrib/examples/doe-family/vsmtp.toml", "--json", "../../contrib/examples/doe-family/tests/jenny-bcc.session")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"outcome", "reply", "decided_by", "quarantine", "mail_from", "recipients", "refused_recipients", "headers", "deliveries", "stages"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("field %q missing", k)
		}
	}
	if rep["outcome"] != "accept" {
		t.Errorf("outcome %v", rep["outcome"])
	}
	rcpts, _ := rep["recipients"].([]any)
	if len(rcpts) != 2 || rcpts[1] != "jane.doe@doe-family.com" {
		t.Errorf("recipients %v: Jane should be added by the bcc", rcpts)
	}

	code, out, _ = runCmd("test", "-c", "../../contrib/examples/doe-family/vsmtp.toml", "../../contrib/examples/doe-family/tests/blacklisted-sender.session")
	if code != 0 || !strings.Contains(out, `outcome:   reject 554 permanent problems with the remote server (by mail "blacklist")`) {
		t.Errorf("text trail (exit %d):\n%s", code, out)
	}

	code, _, errs = runCmd("test", "--mode", "smtp", "nosuch.session")
	if code != 1 || !strings.Contains(errs, "nosuch.session") {
		t.Errorf("a missing session file: exit %d, %s", code, errs)
	}
}

// TestShippedConfigsLoad keeps the configurations shipped in deploy/ and
// contrib/ valid.
func TestShippedConfigsLoad(t *testing.T) {
	for _, cfg := range []string{"../../deploy/container/vsmtp.toml", "../../contrib/examples/doe-family/vsmtp.toml"} {
		if code, out, errs := runCmd("check", "-c", cfg); code != 0 {
			t.Errorf("%s: exit %d\n%s%s", cfg, code, out, errs)
		}
	}
}
