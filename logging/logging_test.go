package logging_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/logging"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/vsl"
	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// jsonLines decodes every line of out as a JSON object.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// hasFields fails unless line holds every field of want with that value.
func hasFields(t *testing.T, line map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if g, ok := line[k]; !ok {
			t.Errorf("field %q missing in %v", k, line)
		} else if g != w {
			t.Errorf("field %q = %#v, want %#v (line %v)", k, g, w, line)
		}
	}
}

func newLogger(t *testing.T, level string, jsonFmt bool) (hclog.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	l, err := logging.New("vsl-milter", logging.Options{Level: level, JSON: jsonFmt, Output: &buf})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l, &buf
}

func TestNewLevels(t *testing.T) {
	for _, tc := range []struct {
		level string
		want  hclog.Level
	}{
		{"trace", hclog.Trace},
		{"debug", hclog.Debug},
		{"info", hclog.Info},
		{"", hclog.Info},
		{"warn", hclog.Warn},
		{"Warning", hclog.Warn},
		{"ERROR", hclog.Error},
	} {
		l, _ := newLogger(t, tc.level, false)
		if got := l.GetLevel(); got != tc.want {
			t.Errorf("level %q: logger at %v, want %v", tc.level, got, tc.want)
		}
	}
}

func TestNewUnknownLevel(t *testing.T) {
	for _, level := range []string{"verbose", "off", "fatal", "3"} {
		l, err := logging.New("vsl-milter", logging.Options{Level: level})
		if err == nil || l != nil {
			t.Errorf("level %q: got logger %v, error %v; want an error", level, l, err)
			continue
		}
		if !errors.Is(err, logging.ErrUnknownLevel) {
			t.Errorf("level %q: error %v does not wrap ErrUnknownLevel", level, err)
		}
		if !strings.Contains(err.Error(), `"`+level+`"`) {
			t.Errorf("level %q: error %q does not name the level", level, err)
		}
	}
}

func TestFormats(t *testing.T) {
	// JSON: one object per line with the level, name, message and fields.
	l, buf := newLogger(t, "info", true)
	l.Debug("hidden")
	l.Info("listening", "addr", "127.0.0.1:8080")
	lines := jsonLines(t, buf.String())
	if len(lines) != 1 {
		t.Fatalf("JSON: %d lines, want 1 (debug filtered): %q", len(lines), buf)
	}
	hasFields(t, lines[0], map[string]any{"@level": "info", "@module": "vsl-milter", "@message": "listening", "addr": "127.0.0.1:8080"})
	if _, ok := lines[0]["@timestamp"]; !ok {
		t.Errorf("JSON line has no @timestamp: %v", lines[0])
	}

	// Text: level, name, message and key=value fields on one line.
	l, buf = newLogger(t, "warn", false)
	l.Info("hidden")
	l.Warn("queue full", "queue", "deferred")
	out := buf.String()
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("text: want one line, got %q", out)
	}
	for _, want := range []string{"[WARN]", "vsl-milter:", "queue full:", "queue=deferred"} {
		if !strings.Contains(out, want) {
			t.Errorf("text line %q lacks %q", out, want)
		}
	}
}

func TestScriptLog(t *testing.T) {
	l, buf := newLogger(t, "debug", true)
	log := logging.ScriptLog(l)
	log("trace", "not shown at debug")
	log("debug", "helo is example.org")
	log("warn", "suspicious sender")
	log("warning", "also warn")
	log("error", "lookup failed")
	log("loud", "unknown level")

	lines := jsonLines(t, buf.String())
	want := []map[string]any{
		{"@level": "debug", "@message": "helo is example.org", "source": "script"},
		{"@level": "warn", "@message": "suspicious sender", "source": "script"},
		{"@level": "warn", "@message": "also warn", "source": "script"},
		{"@level": "error", "@message": "lookup failed", "source": "script"},
		{"@level": "info", "@message": "unknown level", "source": "script", "script_level": "loud"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d: %s", len(lines), len(want), buf)
	}
	for i := range want {
		hasFields(t, lines[i], want[i])
	}
}

func TestObserverScriptError(t *testing.T) {
	pos := syntax.Position{File: "rules/main.vsl", Line: 12, Col: 9}
	d := &policy.Directive{Kind: policy.RuleKind, Name: "check spf", Pos: syntax.Position{File: "rules/main.vsl", Line: 10, Col: 3}}
	ee := &vsl.EvalError{Pos: pos, Msg: "unknown variable 'x'", Stack: []syntax.Position{{File: "rules/lib.vsl", Line: 4, Col: 2}}}
	re := &policy.RuleError{Stage: policy.Mail, Kind: policy.RuleKind, Rule: "check spf", Pos: pos, Err: ee}

	for _, level := range []string{"error", "trace"} {
		t.Run(level, func(t *testing.T) {
			l, buf := newLogger(t, level, true)
			o := logging.Observer{Log: l}
			// What the runner does: the directive's outcome, then the
			// stage's verdict carrying the RuleError.
			o.Directive(policy.Mail, d, policy.Next, ee, 2*time.Millisecond)
			o.Stage(policy.Mail, policy.Verdict{Stage: policy.Mail, Rule: d.Name, RuleStage: policy.Mail, Pos: pos, Err: re}, 3*time.Millisecond)

			var errs []map[string]any
			for _, line := range jsonLines(t, buf.String()) {
				if line["@level"] == "error" {
					errs = append(errs, line)
				}
			}
			if len(errs) != 1 {
				t.Fatalf("%d error lines, want exactly 1:\n%s", len(errs), buf)
			}
			hasFields(t, errs[0], map[string]any{
				"@message": "script error",
				"stage":    "mail",
				"kind":     "rule",
				"rule":     "check spf",
				"pos":      "rules/main.vsl:12:9",
				"error":    "unknown variable 'x'",
			})
			if st, _ := errs[0]["stack"].([]any); len(st) != 1 || st[0] != "rules/lib.vsl:4:2" {
				t.Errorf("stack = %#v, want [rules/lib.vsl:4:2]", errs[0]["stack"])
			}
			if level == "trace" {
				// The directive's debug line points at the error too.
				first := jsonLines(t, buf.String())[0]
				hasFields(t, first, map[string]any{"@level": "debug", "@message": "directive failed", "rule": "check spf", "pos": "rules/main.vsl:12:9", "error": "unknown variable 'x'"})
			}
		})
	}
}

func TestObserverOtherError(t *testing.T) {
	// An error that is not a RuleError still gets the verdict's rule and
	// position.
	l, buf := newLogger(t, "info", true)
	pos := syntax.Position{File: "main.vsl", Line: 3, Col: 1}
	logging.Observer{Log: l}.Stage(policy.Rcpt, policy.Verdict{Rule: "r", Pos: pos, Err: errors.New("deadline passed")}, time.Second)
	lines := jsonLines(t, buf.String())
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1: %s", len(lines), buf)
	}
	hasFields(t, lines[0], map[string]any{"@level": "error", "stage": "rcpt", "rule": "r", "pos": "main.vsl:3:1", "error": "deadline passed"})
}

func TestObserverDebugLines(t *testing.T) {
	d := &policy.Directive{Kind: policy.ActionKind, Name: "log it", Pos: syntax.Position{File: "a.vsl", Line: 2, Col: 5}}
	r := &policy.Directive{Kind: policy.RuleKind, Name: "deny relay", Pos: syntax.Position{File: "a.vsl", Line: 7, Col: 5}}

	// At info level nothing is written for a clean run.
	l, buf := newLogger(t, "info", true)
	o := logging.Observer{Log: l}
	o.Directive(policy.Rcpt, d, policy.Next, nil, time.Microsecond)
	o.Stage(policy.Rcpt, policy.Verdict{Status: &policy.Status{Kind: policy.Next}}, time.Microsecond)
	if buf.Len() != 0 {
		t.Errorf("info level wrote %q", buf)
	}

	// At debug level, one line per directive and one per stage.
	l, buf = newLogger(t, "debug", true)
	o = logging.Observer{Log: l}
	o.Directive(policy.Rcpt, d, policy.Next, nil, 1500*time.Nanosecond)
	o.Directive(policy.Rcpt, r, policy.Deny, nil, 2*time.Microsecond)
	o.Stage(policy.Rcpt, policy.Verdict{Status: &policy.Status{Kind: policy.Deny}, Stage: policy.Rcpt, Rule: "deny relay", Pos: r.Pos}, 4*time.Microsecond)
	lines := jsonLines(t, buf.String())
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3: %s", len(lines), buf)
	}
	hasFields(t, lines[0], map[string]any{"@level": "debug", "stage": "rcpt", "kind": "action", "rule": "log it", "pos": "a.vsl:2:5", "status": "next", "elapsed": "1.5µs"})
	hasFields(t, lines[1], map[string]any{"@level": "debug", "kind": "rule", "rule": "deny relay", "status": "deny"})
	hasFields(t, lines[2], map[string]any{"@level": "debug", "stage": "rcpt", "status": "deny()", "rule": "deny relay", "pos": "a.vsl:7:5", "elapsed": "4µs"})

	// Text format carries the same fields.
	l, buf = newLogger(t, "debug", false)
	logging.Observer{Log: l}.Directive(policy.Rcpt, r, policy.Deny, nil, 2*time.Microsecond)
	for _, want := range []string{"[DEBUG]", "stage=rcpt", "kind=rule", `rule="deny relay"`, "pos=a.vsl:7:5", "status=deny"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text line %q lacks %q", buf, want)
		}
	}
}
