package policy

import (
	"context"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// A milter sees the message only if it asks for it before the first
// message of a connection, and then sees every message whole, although
// most rule sets only need it for some messages: the Doe family's rules
// read nothing of the message, but deliver a copy into a maildir for the
// family's recipients, which needs the message. When the stages after the
// envelope cannot read the message, the delivery stage can run as soon as
// the envelope is complete (the milter's DATA event), and a message that
// then needs nothing more (no local delivery, no modification) is accepted
// there: the MTA sends neither its header nor its body nor its end. The
// same call graph tells whether any rule reads the connection's data
// (ReadsConnection), without which a milter needs neither the connect nor
// the HELO event.

// readsMessage lists the transaction API functions that read or change the
// message itself (header and body), or write it out: the functions
// available from the preq stage on; the header editors, which work on the
// message's header once it has arrived but are kept for the top of the
// header before (SEMANTICS §5); and dump, whose file holds the message once
// it has arrived. Built once, read-only afterwards.
var readsMessage = func() map[string]bool {
	editors := map[string]bool{"append_header": true, "prepend_header": true, "set_header": true,
		"rename_header": true, "remove_header": true, "dump": true}
	m := map[string]bool{}
	for _, f := range apiTable {
		if f.from >= PreQ || editors[f.names[0]] {
			for _, n := range f.names {
				m[n] = true
			}
		}
	}
	return m
}()

// dynamicCalls are the calls whose callee the analysis cannot name: a
// function value made from a name, or called through a value.
var dynamicCalls = map[string]bool{"Fn": true, "call": true, "curry": true}

// callGraph is what the files of a rule set call, by name: in each
// directive's body, in each script function (the functions of one name in
// every file together), and in the code outside both (top-level code and
// the closures it keeps in variables, which any directive may call).
type callGraph struct {
	directives map[syntax.Position]map[string]bool
	funcs      map[string]map[string]bool
	top        map[string]bool
}

// buildCallGraph collects the names called in files.
func buildCallGraph(files []*syntax.File) *callGraph {
	g := &callGraph{directives: map[syntax.Position]map[string]bool{}, funcs: map[string]map[string]bool{}, top: map[string]bool{}}
	for _, f := range files {
		if f == nil {
			continue
		}
		for _, st := range f.Stmts {
			if fd, ok := st.(*syntax.FnDecl); ok {
				names := g.funcs[fd.Name.Name]
				if names == nil {
					names = map[string]bool{}
					g.funcs[fd.Name.Name] = names
				}
				collectCalls(fd.Body, names, g)
				continue
			}
			collectCalls(st, g.top, g)
		}
	}
	return g
}

// collectCalls adds the names n calls to into; a directive inside n gets
// a set of its own in g.
func collectCalls(n syntax.Node, into map[string]bool, g *callGraph) {
	syntax.Inspect(n, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.DirectiveExpr:
			names := map[string]bool{}
			collectCalls(n.Body, names, g)
			g.directives[n.Pos] = names
			return false
		case *syntax.DotExpr:
			// ctx().field reads one field: "ctx()." + field, not all of
			// ctx(), which a plain call counts as.
			if call, ok := n.X.(*syntax.CallExpr); ok && len(call.Args) == 0 {
				if name := calleeName(call.Fn); name == "ctx" || name == "ctx::ctx" {
					into["ctx()."+n.Name] = true
					return false
				}
			}
		case *syntax.CallExpr:
			name := calleeName(n.Fn)
			if name == "" {
				name = "call" // a call of a computed value
			}
			into[name] = true
			if _, fn, ok := strings.Cut(name, "::"); ok {
				into[fn[strings.LastIndex(fn, "::")+1:]] = true // a module's script function
			}
		case *syntax.MethodCallExpr:
			into[n.Name] = true
		}
		return true
	})
}

// reaches reports whether the directive at pos, or anything it may call,
// calls a function bad says yes to. An unknown directive reaches
// everything.
func (g *callGraph) reaches(pos syntax.Position, bad func(string) bool) bool {
	start, ok := g.directives[pos]
	if !ok {
		return true
	}
	seen := map[string]bool{}
	var visit func(names map[string]bool) bool
	visit = func(names map[string]bool) bool {
		for n := range names {
			if seen[n] {
				continue
			}
			seen[n] = true
			if bad(n) {
				return true
			}
			if body, ok := g.funcs[n]; ok && visit(body) {
				return true
			}
		}
		return false
	}
	return visit(start) || visit(g.top)
}

// readsConnection lists what reads the connection's data (the client's
// and server's addresses, the server's name, TLS, the connection's time,
// the HELO name): the API functions that return them, under each of
// their names, the same fields of ctx(), ctx() itself used otherwise than
// to read a field, and dump (its file holds the whole transaction).
// Built once, read-only afterwards.
var readsConnection = func() map[string]bool {
	getters := map[string]bool{"client_ip": true, "client_port": true, "client_address": true, "server_ip": true,
		"server_port": true, "server_address": true, "server_name": true, "is_secured": true,
		"connection_timestamp": true, "helo": true, "ctx": true, "dump": true}
	m := map[string]bool{}
	for _, f := range apiTable {
		if getters[f.names[0]] {
			for _, n := range f.names {
				m[n] = true
			}
		}
	}
	for field, st := range ctxFields {
		if st <= Helo {
			m["ctx()."+field] = true
		}
	}
	return m
}()

// readsConnectionData decides Rules.ReadsConnection for rules whose files
// call what g says.
func readsConnectionData(r *Rules, g *callGraph) bool {
	bad := func(name string) bool { return readsConnection[name] || dynamicCalls[name] }
	for _, ds := range r.stages {
		for _, d := range ds {
			if g.reaches(d.Pos, bad) {
				return true
			}
		}
	}
	return false
}

// ReadsConnection reports whether a directive of any stage may read the
// connection's data (client_ip(), helo(), is_secured(), ctx().client_ip
// and the like, ctx() used as a whole, dump()), directly, through script
// functions of any file or through closures that top-level code keeps; a
// function value made from a name counts as reading it. A milter whose
// rules do not can do without the MTA's connect and HELO events.
func (r *Rules) ReadsConnection() bool { return r.connection }

// deliversBeforeMessage decides Rules.DeliversBeforeMessage for rules
// whose files call what g says.
func deliversBeforeMessage(r *Rules, g *callGraph) bool {
	if len(r.stages[PreQ]) > 0 || len(r.stages[PostQ]) > 0 {
		return false
	}
	bad := func(name string) bool { return readsMessage[name] || dynamicCalls[name] }
	for _, d := range r.stages[Delivery] {
		if d.Kind == DelegateKind || g.reaches(d.Pos, bad) {
			return false
		}
	}
	return true
}

// DeliversBeforeMessage reports whether the delivery stage may run as soon
// as the envelope is complete, before the message arrives, with the
// outcome it would have at the end of the message: preq and postq have no
// directives, the delivery stage delegates nothing, and none of its
// directives can reach a function that reads or changes the message,
// whether directly, through script functions of any file, or through
// closures that top-level code keeps (a function value made from a name,
// Fn("..."), counts as reaching everything). See Session.DeliveryBeforeMessage.
func (r *Rules) DeliversBeforeMessage() bool { return r.earlyDelivery }

// DeliveryBeforeMessage runs the delivery stage once the envelope is
// complete, when the rules allow it (Rules.DeliversBeforeMessage; ok is
// false and nothing runs otherwise), and keeps its decision: EndOfMessage
// then runs preq and postq (which have no directives) but not the
// delivery stage again, and returns the kept decision. The milter calls it
// at the DATA event to learn whether the message is needed at all.
//
// While it runs, the transaction refuses the functions that read the
// message with an error, so that a flaw in the analysis shows as a script
// error rather than as a decision taken on a missing message.
func (s *Session) DeliveryBeforeMessage(ctx context.Context) (d Decision, ok bool) {
	if !s.Rules.earlyDelivery {
		return Decision{}, false
	}
	s.Tx.beforeMessage = true
	d = s.Delivery(ctx)
	s.Tx.beforeMessage = false
	s.early = &d
	return d, true
}
