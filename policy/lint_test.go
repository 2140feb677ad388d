package policy_test

import (
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/policy"
)

// TestWarnings pins the check command's warnings: each names its position.
func TestWarnings(t *testing.T) {
	src := `#{
  connect: [
    action "log" || { log("info", "hi"); deny() },
    rule "early" || if mail_from() == "a@b.c" { deny() } else { next() },
    rule "always" || faccept(),
    rule "dead" || next(),
  ],
  mail: [
    rule "fine" || if mail_from() == "a@b.c" { deny() } else { next() },
    action "late header" || if has_header("X") { log("info", "x") },
  ],
}
`
	r, err := policy.Load("lint.vsl", []byte(src), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`lint.vsl:3:42: warning: action "log" returns deny(), which does nothing: an action's value is ignored (make it a rule to use the status)`,
		`lint.vsl:4:24: warning: mail_from() is never available in stage connect: it can be used from mail on, so this rule fails at run time`,
		`lint.vsl:6:5: warning: rule "dead" is never run: rule "always" before it in stage connect always ends the stage`,
		`lint.vsl:10:32: warning: has_header() is never available in stage mail: it can be used from preq on, so this action fails at run time`,
	}
	var got []string
	for _, w := range r.Warnings {
		got = append(got, w.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := r.WarningsDetailed(); !strings.Contains(d, "        rule \"dead\" || next(),\n        ^") {
		t.Errorf("detailed warnings lack the source line and caret:\n%s", d)
	}
}
