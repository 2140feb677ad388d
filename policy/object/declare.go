package object

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// Declare builds the value of a v1 declaration `object NAME TYPE = value;`.
// TYPE is ip4, ip6, rg4, rg6, fqdn, address, ident, identifier, string,
// regex, group, code or file:TYPE. The value is a string (vSMTP's map form
// #{value: "..."} works too), an array for a group, and for a code also a
// map #{code, enhanced, text}. file is the declaring script's path: the
// path of a file:TYPE list is relative to its directory. A value that does
// not parse as its type is an error naming the value and the type; the
// caller adds the position.
//
// A string object is a plain vSL string, as in vSMTP, so that every string
// method works on it.
func Declare(typ string, v vsl.Value, file string) (vsl.Value, error) {
	if ct, ok := strings.CutPrefix(typ, "file:"); ok {
		path, err := declText(typ, v)
		if err != nil {
			return vsl.Value{}, err
		}
		f, err := LoadFile(resolvePath(path, file), ct)
		if err != nil {
			return vsl.Value{}, err
		}
		return vsl.Host(f), nil
	}
	switch typ {
	case "file":
		return vsl.Value{}, errors.New("a file object needs the type of its values: file:TYPE, e.g. file:fqdn")
	case "group":
		if m := v.AsMap(); m != nil && len(m.M) == 1 {
			v = m.M["value"]
		}
		if v.Kind() != vsl.KindArray {
			return vsl.Value{}, fmt.Errorf("invalid group: expected an array of objects, got %s", v.TypeName())
		}
		g, err := NewGroup(v.AsArray().Elems)
		if err != nil {
			return vsl.Value{}, fmt.Errorf("invalid group: %w", err)
		}
		return vsl.Host(g), nil
	case "code":
		c, err := ToCode(v)
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				return vsl.Value{}, err
			}
			return vsl.Value{}, fmt.Errorf("invalid code: %w", err)
		}
		return vsl.Host(c), nil
	}
	if h := v.AsHost(); h != nil && sameType(h.TypeName(), typ) {
		return v, nil // already an object of that type
	}
	s, err := declText(typ, v)
	if err != nil {
		return vsl.Value{}, err
	}
	return Parse(typ, s)
}

// sameType reports whether an object of type_of name has the declared
// type typ.
func sameType(name, typ string) bool {
	return name == typ || name == "ident" && typ == "identifier"
}

// declText returns the text of a declaration's value: a string, or the
// string under "value" of a map.
func declText(typ string, v vsl.Value) (string, error) {
	if m := v.AsMap(); m != nil {
		if s, ok := m.M["value"]; ok && s.Kind() == vsl.KindString {
			return s.AsString(), nil
		}
		return "", fmt.Errorf("invalid %s: a map value needs a string under 'value'", typ)
	}
	if v.Kind() != vsl.KindString {
		return "", fmt.Errorf("invalid %s: expected a string, got %s", typ, v.TypeName())
	}
	return v.AsString(), nil
}

// resolvePath makes path relative to the directory of the script file.
func resolvePath(path, file string) string {
	if filepath.IsAbs(path) || file == "" {
		return path
	}
	return filepath.Join(filepath.Dir(file), path)
}
