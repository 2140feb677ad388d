package policy

import (
	"fmt"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// statusFuncs are the names of the status functions, v1 and v2.
var statusFuncs = map[string]StatusKind{
	"next": Next, "accept": Accept, "faccept": Faccept, "deny": Deny, "reject": Reject, "info": Info, "quarantine": Quarantine,
}

// statusCall returns the status kind when e is a call of a status function.
func statusCall(e syntax.Expr) (StatusKind, bool) {
	call, ok := e.(*syntax.CallExpr)
	if !ok {
		return 0, false
	}
	var name string
	switch fn := call.Fn.(type) {
	case *syntax.IdentExpr:
		name = fn.Name
	case *syntax.PathExpr:
		if len(fn.Path) != 2 || fn.Path[0].Name != "state" {
			return 0, false
		}
		name = fn.Path[1].Name
	default:
		return 0, false
	}
	k, ok := statusFuncs[name]
	return k, ok
}

// bodyExpr returns the expression a directive evaluates: the closure's
// body (or the `evaluate` closure of a body map).
func bodyExpr(d *syntax.DirectiveExpr) syntax.Expr {
	b := d.Body
	if m, ok := b.(*syntax.MapExpr); ok {
		for _, en := range m.Entries {
			if en.Key == "evaluate" {
				b = en.Value
			}
		}
	}
	if c, ok := b.(*syntax.ClosureExpr); ok {
		return c.Body
	}
	return nil
}

// valueExprs returns the expressions whose value can become the value of e:
// e itself, or the tails of its blocks and branches, and returned values.
func valueExprs(e syntax.Expr, out []syntax.Expr) []syntax.Expr {
	switch x := e.(type) {
	case *syntax.BlockExpr:
		syntax.Inspect(x, func(n syntax.Node) bool {
			if r, ok := n.(*syntax.ReturnStmt); ok && r.Value != nil {
				out = append(out, r.Value)
			}
			_, isClosure := n.(*syntax.ClosureExpr)
			return !isClosure
		})
		if len(x.Stmts) > 0 {
			if es, ok := x.Stmts[len(x.Stmts)-1].(*syntax.ExprStmt); ok && !es.Semi {
				out = valueExprs(es.X, out)
			}
		}
	case *syntax.IfExpr:
		out = valueExprs(x.Then, out)
		if x.Else != nil {
			out = valueExprs(x.Else, out)
		}
	case *syntax.SwitchExpr:
		for _, c := range x.Cases {
			out = valueExprs(c.Body, out)
		}
	case nil:
	default:
		out = append(out, e)
	}
	return out
}

// unconditional returns the status a body always gives when it is a plain
// status call (possibly inside a block without other statements).
func unconditional(e syntax.Expr) (StatusKind, bool) {
	for {
		b, ok := e.(*syntax.BlockExpr)
		if !ok || len(b.Stmts) != 1 {
			break
		}
		es, ok := b.Stmts[0].(*syntax.ExprStmt)
		if !ok || es.Semi {
			return 0, false
		}
		e = es.X
	}
	return statusCall(e)
}

// lint finds what loads but is probably a mistake (the check command's
// warnings): an action that returns a status, directives after a rule that
// always ends the stage, and transaction getters used in a stage where
// they can never be available.
func lint(f *syntax.File, r *Rules) []syntax.Error {
	var warns []syntax.Error
	warn := func(p syntax.Position, format string, args ...any) {
		warns = append(warns, syntax.Error{Pos: p, Msg: "warning: " + fmt.Sprintf(format, args...)})
	}
	exprs := map[syntax.Position]*syntax.DirectiveExpr{}
	ownFuncs := map[string]bool{} // script functions shadow the API's
	syntax.InspectFile(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.DirectiveExpr:
			exprs[n.Pos] = n
		case *syntax.FnDecl:
			ownFuncs[n.Name.Name] = true
		}
		return true
	})
	for st := Stage(0); st < numStages; st++ {
		var stopper *Directive
		for _, d := range r.stages[st] {
			if stopper != nil {
				warn(d.Pos, "%s %q is never run: %s %q before it in stage %s always ends the stage", d.Kind, d.Name, stopper.Kind, stopper.Name, st)
			}
			de := exprs[d.Pos]
			if de == nil {
				continue // defined in an imported module
			}
			body := bodyExpr(de)
			if body == nil {
				continue
			}
			switch d.Kind {
			case ActionKind:
				for _, v := range valueExprs(body, nil) {
					if k, ok := statusCall(v); ok {
						warn(v.Position(), "action %q returns %s(), which does nothing: an action's value is ignored (make it a rule to use the status)", d.Name, k)
						break
					}
				}
			case RuleKind:
				if k, ok := unconditional(body); ok && k != Next && stopper == nil {
					stopper = d
				}
			}
			syntax.Inspect(body, func(n syntax.Node) bool {
				call, ok := n.(*syntax.CallExpr)
				if !ok {
					return true
				}
				name := calleeName(call.Fn)
				if from, ok := getterStage(name); ok && from > st && !ownFuncs[name] {
					warn(call.Pos, "%s() is never available in stage %s: it can be used from %s on, so this %s fails at run time", name, st, from, d.Kind)
				}
				return true
			})
		}
	}
	return warns
}

// calleeName is the name a call names its function by: f, or ns::f for a
// path; "" for a function computed by an expression.
func calleeName(fn syntax.Expr) string {
	switch fn := fn.(type) {
	case *syntax.IdentExpr:
		return fn.Name
	case *syntax.PathExpr:
		parts := make([]string, len(fn.Path))
		for i, p := range fn.Path {
			parts[i] = p.Name
		}
		return strings.Join(parts, "::")
	}
	return ""
}

// calledNames lists the names of every function the file calls.
func calledNames(f *syntax.File) map[string]bool {
	names := map[string]bool{}
	syntax.InspectFile(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.CallExpr:
			if name := calleeName(n.Fn); name != "" {
				names[name] = true
			}
		case *syntax.MethodCallExpr:
			names[n.Name] = true
		}
		return true
	})
	return names
}
