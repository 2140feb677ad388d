package policy

import (
	"fmt"

	"github.com/vsl-milter/vsl-milter/policy/service"
	"github.com/vsl-milter/vsl-milter/vsl"
	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// DirectiveKind says how a directive's value is used.
type DirectiveKind uint8

// The directive kinds of SEMANTICS §2.
const (
	RuleKind     DirectiveKind = iota // its body must evaluate to a status
	ActionKind                        // its body runs for its effects; its value is ignored
	DelegateKind                      // hands the message to a filter service (§7)
)

var directiveKindNames = [...]string{"rule", "action", "delegate"}

// String returns the keyword of the kind.
func (k DirectiveKind) String() string { return directiveKindNames[k] }

// Directive is a compiled rule, action or delegate directive. It is the
// value a directive expression evaluates to in a script.
type Directive struct {
	Kind    DirectiveKind
	Name    string
	Body    vsl.Value // a function value of no parameters
	Service vsl.Value // the service of a delegate directive
	Pos     syntax.Position
	Stage   Stage // set when the stage map is read
}

// TypeName implements vsl.HostValue.
func (d *Directive) TypeName() string { return d.Kind.String() }

// String implements vsl.HostValue.
func (d *Directive) String() string { return fmt.Sprintf("%s %q", d.Kind, d.Name) }

// newDirective is the Env.Directive hook: it checks the body's shape.
func newDirective(d *vsl.Directive) (vsl.Value, error) {
	kind := RuleKind
	switch d.Kind {
	case "action":
		kind = ActionKind
	case "delegate":
		kind = DelegateKind
	}
	body := d.Body
	if m := body.AsMap(); m != nil {
		ev, ok := m.M["evaluate"]
		if !ok {
			return vsl.Value{}, fmt.Errorf("the body map of %s %q needs an 'evaluate' closure", kind, d.Name)
		}
		body = ev
	}
	f := body.AsFn()
	if f == nil {
		return vsl.Value{}, fmt.Errorf("the body of %s %q must be a closure `|| ...` (or a map #{evaluate: || ...}), not %s", kind, d.Name, body.TypeName())
	}
	if kind == DelegateKind {
		if _, ok := d.Service.AsHost().(*service.SMTP); !ok {
			return vsl.Value{}, fmt.Errorf("delegate %q needs an smtp service (service NAME smtp = #{...} or smtp::connect(#{...})), not %s", d.Name, d.Service.TypeName())
		}
	}
	return vsl.Host(&Directive{Kind: kind, Name: d.Name, Body: body, Service: d.Service, Pos: d.Pos}), nil
}
