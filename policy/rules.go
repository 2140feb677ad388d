package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vsl-milter/vsl-milter/policy/object"
	"github.com/vsl-milter/vsl-milter/policy/service"
	"github.com/vsl-milter/vsl-milter/vsl"
	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// Rules is a loaded rule set: the compiled program and its directives by
// stage. It is immutable after Load and serves any number of concurrent
// transactions.
type Rules struct {
	prog    *vsl.Program
	stages  [numStages][]*Directive
	limits  vsl.Limits
	threads threadPool
	// Warnings are findings that do not stop the rules from loading.
	Warnings []syntax.Error
	src      []byte          // the entry file's source, for snippets
	calls    map[string]bool // the functions the rule set's files call (Calls)
	// earlyDelivery: the delivery stage may run before the message
	// arrives (DeliversBeforeMessage).
	earlyDelivery bool
	// connection: a directive may read the connection's data
	// (ReadsConnection).
	connection bool
}

// WarningsDetailed renders the warnings with their source lines and a
// caret under the column, as the check command prints them.
func (r *Rules) WarningsDetailed() string {
	if len(r.Warnings) == 0 {
		return ""
	}
	l := &syntax.ErrorList{Errs: r.Warnings, Src: r.src}
	return l.Detailed()
}

// Options configure loading.
type Options struct {
	// Limits bound each stage's run (vsl.DefaultLimits when zero).
	Limits vsl.Limits
	// Env, when set, is extended instead of a new one (tests add functions).
	Env *vsl.Env
}

// Directives returns the directives of a stage in order.
func (r *Rules) Directives(s Stage) []*Directive { return r.stages[s] }

// Program returns the compiled program.
func (r *Rules) Program() *vsl.Program { return r.prog }

// LoadFile reads and compiles the rules entry point (main.vsl) at path and
// evaluates its top level, which must produce the stage map.
func LoadFile(path string, opts Options) (*Rules, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	return Load(path, src, opts)
}

// Load compiles src as the rules entry point at path.
func Load(path string, src []byte, opts Options) (*Rules, error) {
	if opts.Limits == (vsl.Limits{}) {
		opts.Limits = vsl.DefaultLimits()
	}
	env := opts.Env
	if env == nil {
		env = NewEnv()
	}
	f, err := syntax.Parse(path, src)
	if err != nil {
		return nil, err
	}
	prog, err := vsl.Compile(f, env)
	if err != nil {
		return nil, err
	}
	th := vsl.NewThread(opts.Limits)
	th.Reset(context.Background())
	top, err := prog.Run(th)
	if err != nil {
		return nil, err
	}
	r := &Rules{prog: prog, limits: opts.Limits, src: src}
	if err := r.readStages(f, top); err != nil {
		return nil, err
	}
	r.Warnings = lint(f, r)
	r.calls = map[string]bool{}
	for _, file := range prog.Files() {
		for name := range calledNames(file) {
			r.calls[name] = true
		}
	}
	g := buildCallGraph(prog.Files())
	r.earlyDelivery = deliversBeforeMessage(r, g)
	r.connection = readsConnectionData(r, g)
	return r, nil
}

// NewEnv returns the environment rule files compile in: the Rhai standard
// library, modules from files, directives, v1 declarations, objects, codes,
// statuses and the transaction API.
func NewEnv() *vsl.Env {
	env := vsl.NewEnv()
	env.Loader = loadModule
	env.Directive = newDirective
	env.Declare = declare
	object.Define(env)
	service.Define(env)
	defineStatuses(env)
	defineAPI(env)
	return env
}

// loadModule is the Env.Loader of rule files: modules are files relative to
// the importing file, except vSMTP v2's plugins, which vsl-milter provides
// itself (`import "plugins/libvsmtp_plugin_csv" as db;`).
func loadModule(path, from string) (string, []byte, error) {
	if src, ok := service.PluginSource(path); ok {
		return filepath.Join(filepath.Dir(from), path), src, nil
	}
	return vsl.FileLoader(path, from)
}

// declare is the Env.Declare hook: v1 `object` and `service` statements.
func declare(d *vsl.Declaration) (vsl.Value, error) {
	if d.Service {
		return service.Declare(d.Name, d.Type, d.Value, d.File)
	}
	return object.Declare(d.Type, d.Value, d.File)
}

// stageMapPositions finds the positions of the stage map's keys and
// elements in the entry file's last expression, for errors.
func stageMapPositions(f *syntax.File) (keys map[string]syntax.Position, elems map[string][]syntax.Position, at syntax.Position) {
	keys, elems = map[string]syntax.Position{}, map[string][]syntax.Position{}
	at = syntax.Position{File: f.Path, Line: 1, Col: 1}
	if len(f.Stmts) == 0 {
		return
	}
	last := f.Stmts[len(f.Stmts)-1]
	at = last.Position()
	es, ok := last.(*syntax.ExprStmt)
	if !ok {
		return
	}
	m, ok := es.X.(*syntax.MapExpr)
	if !ok {
		return
	}
	for _, e := range m.Entries {
		keys[e.Key] = e.KeyPos
		if a, ok := e.Value.(*syntax.ArrayExpr); ok {
			for _, x := range a.Elems {
				elems[e.Key] = append(elems[e.Key], x.Position())
			}
		} else {
			elems[e.Key] = []syntax.Position{e.Value.Position()}
		}
	}
	return
}

func (r *Rules) readStages(f *syntax.File, top vsl.Value) error {
	keyPos, elemPos, at := stageMapPositions(f)
	var errs []syntax.Error
	fail := func(p syntax.Position, format string, args ...any) {
		errs = append(errs, syntax.Error{Pos: p, Msg: fmt.Sprintf(format, args...)})
	}
	m := top.AsMap()
	if m == nil {
		if top.IsUnit() {
			fail(at, "the rules file must end with the stage map #{ connect: [...], mail: [...], ... }, but its last statement has no value (a trailing ';'?)")
		} else {
			fail(at, "the rules file must end with the stage map #{ stage: [directives] }, not a value of type %s", top.TypeName())
		}
		return &syntax.ErrorList{Errs: errs, Src: f.Src}
	}
	names := map[string]*Directive{}
	seenStage := map[Stage]string{}
	for _, key := range vsl.SortedKeys(m) {
		p := keyPos[key]
		if !p.IsValid() {
			p = at
		}
		st, ok := ParseStage(key)
		if !ok {
			fail(p, "unknown stage %q; the stages are %s", key, strings.Join(stageNames[:], ", ")+" (and \"deliver\" for delivery)")
			continue
		}
		if other, dup := seenStage[st]; dup {
			fail(p, "stage %q is given twice (also as %q)", key, other)
			continue
		}
		seenStage[st] = key
		arr := m.M[key].AsArray()
		if arr == nil {
			fail(p, "stage %q must be an array of directives, not %s", key, m.M[key].TypeName())
			continue
		}
		for i, el := range arr.Elems {
			ep := p
			if ps := elemPos[key]; i < len(ps) {
				ep = ps[i]
			}
			d, ok := el.AsHost().(*Directive)
			if !ok {
				fail(ep, "element %d of stage %q is a %s, not a rule, action or delegate directive", i+1, key, el.TypeName())
				continue
			}
			if other, dup := names[d.Name]; dup {
				fail(d.Pos, "directive name %q is used twice (first at %s)", d.Name, other.Pos)
				continue
			}
			if d.Kind == DelegateKind && st != PostQ && st != Delivery {
				fail(d.Pos, "delegate %q is only allowed in the postq and delivery stages, not %s", d.Name, st)
				continue
			}
			names[d.Name] = d
			cp := *d
			cp.Stage = st
			r.stages[st] = append(r.stages[st], &cp)
		}
	}
	if len(errs) > 0 {
		l := &syntax.ErrorList{Errs: errs, Src: f.Src}
		l.Sort()
		return l
	}
	return nil
}

// Names returns every directive's name, sorted (for metrics and tools).
func (r *Rules) Names() []string {
	var out []string
	for _, ds := range r.stages {
		for _, d := range ds {
			out = append(out, d.Name)
		}
	}
	sort.Strings(out)
	return out
}

// Calls reports whether any file of the rule set, the entry file or a
// module it imports, calls the function named name (as f(...) or
// ns::f(...), or as a method x.f(...)), so front ends can negotiate only
// what the rules may use. It looks at every call in those files, whether
// a directive can reach it or not.
func (r *Rules) Calls(name string) bool { return r.calls[name] }
