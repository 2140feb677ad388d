// Package object implements vSL's objects: the host values for mail concepts
// (email addresses, IP addresses and CIDR ranges, domain names, identifiers,
// regular expressions, SMTP reply codes, groups and file lists), the
// comparison rules of `==`, `is` and `in` between them and plain strings, the
// v1 declarations `object NAME TYPE = value;` (Declare) and the v2
// constructor functions and predefined codes (Define).
//
// Groups and file lists are compiled once, when they are declared, into hash
// sets keyed by normalized values and per-prefix-length tables of ranges, so
// that `x in list` costs a few hash lookups whatever the size of the list.
// Every object is immutable once built: the rules of concurrent transactions
// share them.
//
// The package depends on the vsl interpreter and the standard library only.
// It must not know about milter, SMTP sessions or transactions: the
// transaction API builds its values with AddressValue, IPValue, FQDNValue and
// IdentValue, and reads codes with ToCode.
package object

import (
	"fmt"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// ParseError reports a value that does not parse as the object type it was
// declared or constructed as.
type ParseError struct {
	Type  string // the object type, e.g. "ip4"
	Value string // the text that was given
	Err   error  // why it does not parse
}

// Error renders `invalid TYPE "VALUE": reason`.
func (e *ParseError) Error() string {
	return fmt.Sprintf("invalid %s %q: %v", e.Type, e.Value, e.Err)
}

// Unwrap returns the reason.
func (e *ParseError) Unwrap() error { return e.Err }

// Parse builds the object of type typ from its text: typ is one of ip4, ip6,
// rg4, rg6, fqdn, address, ident, identifier, string, regex and code. A
// string object is a plain vSL string. The error is a *ParseError naming the
// type and the value.
func Parse(typ, s string) (vsl.Value, error) {
	switch typ {
	case "ip4", "ip6":
		ip, err := parseIP(typ, s)
		if err != nil {
			return vsl.Value{}, err
		}
		return vsl.Host(ip), nil
	case "rg4", "rg6":
		r, err := parseRange(typ, s)
		if err != nil {
			return vsl.Value{}, err
		}
		return vsl.Host(r), nil
	case "fqdn":
		f, err := ParseFQDN(s)
		if err != nil {
			return vsl.Value{}, err
		}
		return vsl.Host(f), nil
	case "address":
		a, err := ParseAddress(s)
		if err != nil {
			return vsl.Value{}, err
		}
		return a.value(), nil
	case "ident", "identifier":
		return IdentValue(s), nil
	case "string":
		return vsl.String(s), nil
	case "regex":
		r, err := ParseRegex(s)
		if err != nil {
			return vsl.Value{}, err
		}
		return vsl.Host(r), nil
	case "code":
		c, err := ParseCode(s)
		if err != nil {
			return vsl.Value{}, err
		}
		return vsl.Host(c), nil
	}
	return vsl.Value{}, fmt.Errorf("unknown object type %q (expected ip4, ip6, rg4, rg6, fqdn, address, ident, identifier, string, regex, group, code or file:TYPE)", typ)
}

// matchesRegex reports whether other is a regex object matching the text of
// h, for the Equal methods of the other object types.
func matchesRegex(h vsl.HostValue, other vsl.Value) (eq, ok bool) {
	if r, isRe := other.AsHost().(*Regex); isRe {
		return r.Re.MatchString(h.String()), true
	}
	return false, false
}
