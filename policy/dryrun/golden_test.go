package dryrun_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/config"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/policy/dryrun"
)

var update = flag.Bool("update", false, "rewrite the expected .json files of the golden session tests")

// TestGoldenSessions runs every NAME.session of the rule sets under
// testdata/ and of the examples under contrib/examples/ (their tests/
// folder), and compares the report with NAME.json beside it. A rule set is
// a folder with a vsmtp.toml (loaded as the real configuration) or a
// main.vsl. A session file's first comment lines may say
// "# mode: smtp" or "# on_error: deny|accept".
func TestGoldenSessions(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/*")
	examples, _ := filepath.Glob("../../contrib/examples/*")
	dirs = append(dirs, examples...)
	n := 0
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		sessions, _ := filepath.Glob(filepath.Join(dir, "*.session"))
		more, _ := filepath.Glob(filepath.Join(dir, "tests", "*.session"))
		sessions = append(sessions, more...)
		if len(sessions) == 0 {
			continue
		}
		rules, serverName := loadRules(t, dir)
		for _, file := range sessions {
			n++
			t.Run(strings.TrimPrefix(file, "../../"), func(t *testing.T) {
				runGolden(t, rules, serverName, file)
			})
		}
	}
	if n < 3 {
		t.Fatalf("found only %d golden sessions", n)
	}
}

func loadRules(t *testing.T, dir string) (*policy.Rules, string) {
	t.Helper()
	cfgPath := filepath.Join(dir, "vsmtp.toml")
	if _, err := os.Stat(cfgPath); err == nil {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			t.Fatalf("%s: %v", cfgPath, err)
		}
		r, err := policy.LoadFile(cfg.RulesPath(), policy.Options{})
		if err != nil {
			t.Fatalf("%s: loading rules: %v", dir, err)
		}
		return r, cfg.Server.Domain
	}
	r, err := policy.LoadFile(filepath.Join(dir, "main.vsl"), policy.Options{})
	if err != nil {
		t.Fatalf("%s: loading rules: %v", dir, err)
	}
	return r, "mx.example.com"
}

func runGolden(t *testing.T, rules *policy.Rules, serverName, file string) {
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dryrun.Parse(file, bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	opts := dryrun.Options{ServerName: serverName}
	for _, l := range strings.Split(string(src), "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		if v, ok := strings.CutPrefix(l, "# mode: "); ok && strings.TrimSpace(v) == "smtp" {
			opts.Mode = dryrun.SMTP
		}
		if v, ok := strings.CutPrefix(l, "# on_error: "); ok {
			oe, ok := policy.ParseOnError(strings.TrimSpace(v))
			if !ok {
				t.Fatalf("bad on_error %q", v)
			}
			opts.OnError = oe
		}
	}
	var logs []string
	opts.Log = func(level, msg string) { logs = append(logs, level+": "+msg) }
	rep := dryrun.Run(context.Background(), rules, s, opts)
	got, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSuffix(file, ".session") + ".json"
	if *update {
		if err := os.WriteFile(want, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	exp, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("%v (run go test ./policy/dryrun -update to create it, then review it)", err)
	}
	if !bytes.Equal(got, exp) {
		t.Errorf("report differs from %s:\n--- got\n%s\n--- want\n%s", want, got, exp)
	}
}

// TestV1V2Same checks that the same policy written in the v1 dialect
// (testdata/v1) and in the v2 dialect (testdata/v2) gives the same report
// for every session.
func TestV1V2Same(t *testing.T) {
	v1, _ := loadRules(t, "testdata/v1")
	v2, _ := loadRules(t, "testdata/v2")
	sessions, _ := filepath.Glob("testdata/v1/*.session")
	if len(sessions) == 0 {
		t.Fatal("no sessions in testdata/v1")
	}
	for _, file := range sessions {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		s, err := dryrun.Parse(file, bytes.NewReader(src))
		if err != nil {
			t.Fatal(err)
		}
		opts := dryrun.Options{ServerName: "mx.example.net"}
		a, _ := dryrun.Run(context.Background(), v1, s, opts).JSON()
		b, _ := dryrun.Run(context.Background(), v2, s, opts).JSON()
		if !bytes.Equal(a, b) {
			t.Errorf("%s: v1 and v2 differ:\n--- v1\n%s\n--- v2\n%s", file, a, b)
		}
	}
}
