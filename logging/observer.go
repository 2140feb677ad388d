package logging

import (
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/vsl"
)

// Observer is a policy.Observer that logs the rules' work to Log:
//
//   - every script error once, at error level, when its stage ends, with
//     the fields stage, kind, rule, pos (file:line:col) and error, plus
//     stack (the calls that led there) when known;
//   - one debug line per directive run (stage, kind, rule, pos, status
//     or error and its position, elapsed) and one per stage (stage,
//     status, the rule that decided, elapsed).
//
// The debug lines cost nothing when Log is above debug level.
type Observer struct {
	Log hclog.Logger
}

// Directive implements policy.Observer: a debug line per directive run.
// A script error is only logged at error level by Stage, so that it
// appears once.
func (o Observer) Directive(stage policy.Stage, d *policy.Directive, status policy.StatusKind, err error, elapsed time.Duration) {
	if !o.Log.IsDebug() {
		return
	}
	if err != nil {
		pos, msg := d.Pos, err.Error()
		var ee *vsl.EvalError
		if errors.As(err, &ee) {
			msg = ee.Msg
			if ee.Pos.IsValid() {
				pos = ee.Pos
			}
		}
		o.Log.Debug("directive failed", "stage", stage.String(), "kind", d.Kind.String(), "rule", d.Name,
			"pos", pos.String(), "error", msg, "elapsed", elapsed.String())
		return
	}
	o.Log.Debug("directive run", "stage", stage.String(), "kind", d.Kind.String(), "rule", d.Name,
		"pos", d.Pos.String(), "status", status.String(), "elapsed", elapsed.String())
}

// Stage implements policy.Observer: the script error of the stage at
// error level, or a debug line with its verdict.
func (o Observer) Stage(stage policy.Stage, v policy.Verdict, elapsed time.Duration) {
	if v.Err != nil {
		o.Log.Error("script error", scriptErrorFields(stage, v)...)
		return
	}
	if !o.Log.IsDebug() {
		return
	}
	status := policy.Next.String() + "()"
	if v.Status != nil {
		status = v.Status.String()
	}
	fields := []any{"stage", stage.String(), "status", status, "elapsed", elapsed.String()}
	if v.Rule != "" {
		fields = append(fields, "rule", v.Rule, "pos", v.Pos.String())
	}
	o.Log.Debug("stage done", fields...)
}

// scriptErrorFields returns the fields of the script error of v: the
// directive and position from the *policy.RuleError when there is one,
// the message without the position already in "pos".
func scriptErrorFields(stage policy.Stage, v policy.Verdict) []any {
	rule, pos, msg := v.Rule, v.Pos, v.Err.Error()
	fields := []any{"stage", stage.String()}
	var re *policy.RuleError
	if errors.As(v.Err, &re) {
		rule, pos, msg = re.Rule, re.Pos, re.Err.Error()
		fields = append(fields, "kind", re.Kind.String())
	}
	fields = append(fields, "rule", rule, "pos", pos.String())
	var ee *vsl.EvalError
	if errors.As(v.Err, &ee) {
		msg = ee.Msg
		if len(ee.Stack) > 0 {
			stack := make([]string, len(ee.Stack))
			for i, p := range ee.Stack {
				stack[i] = p.String()
			}
			fields = append(fields, "stack", stack)
		}
	}
	return append(fields, "error", msg)
}

// Compile-time check that Observer feeds the rule runner.
var _ policy.Observer = Observer{}
