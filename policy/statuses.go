package policy

import (
	"fmt"

	"github.com/vsl-milter/vsl-milter/policy/object"
	"github.com/vsl-milter/vsl-milter/vsl"
)

// defineStatuses registers the status functions under their v1 names
// (next(), deny(code), ...) and their v2 names (state::next(), ...).
func defineStatuses(env *vsl.Env) {
	simple := func(kind StatusKind) vsl.Value { return vsl.Host(&Status{Kind: kind}) }
	// Statuses without a code are shared values: they are immutable.
	plain := map[StatusKind]vsl.Value{}
	for _, k := range []StatusKind{Next, Accept, Faccept, Deny, Reject} {
		plain[k] = simple(k)
	}
	withCode := func(name string, kind StatusKind, codeRequired bool) {
		fn := func(c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
			switch len(args) {
			case 0:
				if codeRequired {
					return vsl.Value{}, fmt.Errorf("%s needs a reply code, e.g. %s(\"451 4.7.1 try again later\")", name, name)
				}
				return plain[kind], nil
			case 1:
				code, err := object.ToCode(args[0])
				if err != nil {
					return vsl.Value{}, err
				}
				return vsl.Host(&Status{Kind: kind, Code: code}), nil
			}
			return vsl.Value{}, vsl.ErrNoMatch
		}
		env.Define(&vsl.Builtin{Name: name, Fn: fn})
		env.Define(&vsl.Builtin{Name: "state::" + name, Fn: fn})
	}
	withCode("accept", Accept, false)
	withCode("faccept", Faccept, false)
	withCode("deny", Deny, false)
	withCode("reject", Reject, false)
	withCode("info", Info, true)
	next := func(c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 0 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		return plain[Next], nil
	}
	env.Define(&vsl.Builtin{Name: "next", Fn: next})
	env.Define(&vsl.Builtin{Name: "state::next", Fn: next})
	quarantine := func(c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 1 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		name := vsl.ToString(args[0])
		if name == "" {
			return vsl.Value{}, fmt.Errorf("quarantine needs the quarantine's name")
		}
		return vsl.Host(&Status{Kind: Quarantine, Quarantine: name}), nil
	}
	env.Define(&vsl.Builtin{Name: "quarantine", Fn: quarantine})
	env.Define(&vsl.Builtin{Name: "state::quarantine", Fn: quarantine})
}
