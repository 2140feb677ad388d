package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vsl-milter/vsl-milter/policy/service"
	"github.com/vsl-milter/vsl-milter/vsl"
	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// Verdict is the outcome of one stage.
type Verdict struct {
	Status *Status
	// Stage is the stage that was run (or skipped).
	Stage Stage
	// Rule is the directive that decided ("" when every directive said
	// next), RuleStage the stage it belongs to (earlier than Stage when
	// an earlier finished status decided), and Pos its position.
	Rule      string
	RuleStage Stage
	Pos       syntax.Position
	// Err is a script error (runtime error, exhausted budget, passed
	// deadline, panic): the front end answers its on_error setting.
	Err error
	// Skipped is set when an earlier finished status decided without
	// running this stage's rules.
	Skipped bool
}

// Observer is told each directive's outcome and each stage's verdict
// (metrics and logs). It is called on the goroutine running the stage.
type Observer interface {
	// Directive reports one rule, action or delegate run: the status it
	// gave (next for actions), or the script error.
	Directive(stage Stage, d *Directive, status StatusKind, err error, elapsed time.Duration)
	// Stage reports a stage's verdict and how long its rules took (not
	// called for a stage skipped because an earlier status finished the
	// transaction, nor for a stage without directives).
	Stage(stage Stage, v Verdict, elapsed time.Duration)
}

var (
	nextStatus      = &Status{Kind: Next}
	delegatedStatus = &Status{Kind: Delegated}
)

// threads pools interpreter threads: a stage run allocates nothing for them.
type threadPool struct{ p sync.Pool }

func (tp *threadPool) get(lim vsl.Limits) *vsl.Thread {
	if th, ok := tp.p.Get().(*vsl.Thread); ok {
		th.SetLimits(lim)
		return th
	}
	return vsl.NewThread(lim)
}

// RunOptions carry the per-run hooks and settings.
type RunOptions struct {
	// Observer, when set, is told each directive's outcome.
	Observer Observer
	// Log receives the script's log(level, text) calls; nil discards them.
	Log func(level, msg string)
	// AppDir is the application directory (app.dirpath) under which
	// write() and dump() store files.
	AppDir string
	// Domains are the server's own domains besides its name (in_domain).
	Domains []string
	// DryRun: write() and dump() store nothing (the test command).
	DryRun bool
}

// Run runs the directives of stage against tx and returns the verdict.
// A finished status of an earlier stage is returned again without running
// rules. ctx bounds the run (the front end gives it the stage deadline).
func (r *Rules) Run(ctx context.Context, stage Stage, tx *Transaction, opts RunOptions) Verdict {
	if tx.finished != nil {
		v := *tx.finished
		v.Stage, v.Skipped = stage, true
		return v
	}
	tx.stage = stage
	if stage > tx.reached {
		tx.reached = stage
	}
	th := r.threads.get(r.limits)
	defer r.threads.p.Put(th)
	tx.rc = runCtx{tx: tx, stage: stage, opts: opts}
	th.Host = &tx.rc
	defer func() { th.Host = nil }()

	stageStart := time.Now()
	v := r.runStage(ctx, th, stage, tx, opts)
	if opts.Observer != nil && len(r.stages[stage]) > 0 {
		opts.Observer.Stage(stage, v, time.Since(stageStart))
	}
	return v
}

// runStage runs the directives of stage in order until one decides. A
// delegate directive reached for the first time stops the stage with the
// Delegated status and records the pending Delegation; once the message
// has come back (Transaction.ReturnDelegation), running the stage again
// resumes at that directive, whose body then runs like a rule's.
func (r *Rules) runStage(ctx context.Context, th *vsl.Thread, stage Stage, tx *Transaction, opts RunOptions) Verdict {
	first := 0
	if dl := tx.delegation; dl != nil && dl.Stage == stage && dl.returned {
		first = dl.index
		if dl.skip {
			first++
			tx.delegation = nil
		}
	}
	for i, d := range r.stages[stage][first:] {
		i += first
		if d.Kind == DelegateKind {
			dl := tx.delegation
			if dl == nil || dl.Stage != stage || dl.index != i || !dl.returned {
				svc, _ := d.Service.AsHost().(*service.SMTP)
				tx.delegations++
				tx.delegation = &Delegation{
					Stage: stage, Directive: d.Name, Pos: d.Pos, Service: svc, index: i,
					ID: fmt.Sprintf("%s.%d.%s", tx.MessageID, tx.delegations, NewMessageID()[:8]),
				}
				if opts.Observer != nil {
					opts.Observer.Directive(stage, d, Delegated, nil, 0)
				}
				return Verdict{Status: delegatedStatus, Stage: stage, Rule: d.Name, RuleStage: stage, Pos: d.Pos}
			}
			tx.delegation = nil // resumed: the body runs now
		}
		th.Reset(ctx)
		start := time.Now()
		v, err := r.prog.Call(th, d.Body)
		st := nextStatus
		if err == nil && d.Kind != ActionKind {
			s, ok := v.AsHost().(*Status)
			switch {
			case ok:
				st = s
			case d.Kind == RuleKind:
				err = &vsl.EvalError{Pos: d.Pos, Msg: fmt.Sprintf("returned a value of type %s, not a status such as next() or deny()", v.TypeName())}
			}
		}
		if opts.Observer != nil {
			kind := st.Kind
			opts.Observer.Directive(stage, d, kind, err, time.Since(start))
		}
		if err != nil {
			re := &RuleError{Stage: stage, Kind: d.Kind, Rule: d.Name, Pos: errPos(err, d.Pos), Err: err}
			return Verdict{Stage: stage, Rule: d.Name, RuleStage: stage, Pos: re.Pos, Err: re}
		}
		if st.Kind == Next {
			continue
		}
		verdict := Verdict{Status: st, Stage: stage, Rule: d.Name, RuleStage: stage, Pos: d.Pos}
		if st.Kind.Finished() {
			f := verdict
			tx.finished = &f
			if stage <= Helo {
				tx.sessionFin = &f
			}
		}
		return verdict
	}
	return Verdict{Status: nextStatus, Stage: stage, RuleStage: stage}
}

// Busy reports whether running stage on tx would run any directive (the
// stage has directives and no finished status decided before).
func (r *Rules) Busy(stage Stage, tx *Transaction) bool {
	return tx.finished == nil && len(r.stages[stage]) > 0
}

// RuleError is a script error in a directive: a runtime error, an
// exhausted budget, a passed deadline or a panic in a builtin.
type RuleError struct {
	Stage Stage
	Kind  DirectiveKind
	Rule  string
	Pos   syntax.Position // where the error happened
	Err   error
}

// Error renders "file:line:col: rule "name": message".
func (e *RuleError) Error() string {
	msg := e.Err.Error()
	var ee *vsl.EvalError
	if errors.As(e.Err, &ee) {
		msg = ee.Msg
	}
	return fmt.Sprintf("%s: %s %q: %s", e.Pos, e.Kind, e.Rule, msg)
}

// Unwrap returns the script error.
func (e *RuleError) Unwrap() error { return e.Err }

// errPos returns the position of a script error, or def.
func errPos(err error, def syntax.Position) syntax.Position {
	var ee *vsl.EvalError
	if errors.As(err, &ee) && ee.Pos.IsValid() {
		return ee.Pos
	}
	return def
}

// SessionFinished returns the finished status reached at connect or helo
// (a deny refuses, a faccept accepts every later transaction of the
// connection), or nil.
func (tx *Transaction) SessionFinished() *Verdict { return tx.sessionFin }
