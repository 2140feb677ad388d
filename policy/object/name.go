package object

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// FQDN is a domain name object (type_of "fqdn"). It compares with another
// fqdn or a string ignoring case and one trailing dot.
type FQDN struct {
	Name string
}

// ParseFQDN checks that s is a domain name: dot-separated labels of 1 to 63
// letters, digits, '-' (not at either end of a label), '_' or UTF-8, at most
// 253 bytes in all, with an optional trailing dot.
func ParseFQDN(s string) (*FQDN, error) {
	if err := checkFQDN(s); err != nil {
		return nil, &ParseError{Type: "fqdn", Value: s, Err: err}
	}
	return &FQDN{Name: s}, nil
}

// FQDNValue returns an fqdn object for s without checking it (for names the
// MTA reports, such as the HELO argument).
func FQDNValue(s string) vsl.Value { return vsl.Host(&FQDN{Name: s}) }

// TypeName returns "fqdn".
func (f *FQDN) TypeName() string { return "fqdn" }

// String returns the name as it was given.
func (f *FQDN) String() string { return f.Name }

// Equal compares with an fqdn or a string (ignoring case and a trailing
// dot), or a regex (which must match the name).
func (f *FQDN) Equal(other vsl.Value) (eq, ok bool) {
	switch other.Kind() {
	case vsl.KindString:
		return domainEqual(f.Name, other.AsString()), true
	case vsl.KindHost:
		if o, isFQDN := other.AsHost().(*FQDN); isFQDN {
			return domainEqual(f.Name, o.Name), true
		}
		return matchesRegex(f, other)
	}
	return false, false
}

func checkFQDN(s string) error {
	name := strings.TrimSuffix(s, ".")
	if name == "" {
		return errors.New("empty domain name")
	}
	if len(name) > 253 {
		return fmt.Errorf("longer than 253 bytes (%d)", len(name))
	}
	for label := range strings.SplitSeq(name, ".") {
		switch {
		case label == "":
			return errors.New("empty label")
		case len(label) > 63:
			return fmt.Errorf("label %q longer than 63 bytes", label)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("label %q starts or ends with '-'", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c >= 0x80) {
				return fmt.Errorf("character %q not allowed in a domain name", c)
			}
		}
	}
	return nil
}

// domainEqual compares two domain names ignoring case and one trailing dot.
// It does not allocate.
func domainEqual(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

// Ident is an identifier object (type_of "ident"), such as a user name or
// the null sender IdentValue("null"). It compares exactly with another
// identifier or a string.
type Ident struct {
	Name string
}

// IdentValue returns an identifier object.
func IdentValue(s string) vsl.Value { return vsl.Host(&Ident{Name: s}) }

// TypeName returns "ident".
func (id *Ident) TypeName() string { return "ident" }

// String returns the identifier.
func (id *Ident) String() string { return id.Name }

// Equal compares exactly with an identifier or a string, or matches a regex.
func (id *Ident) Equal(other vsl.Value) (eq, ok bool) {
	switch other.Kind() {
	case vsl.KindString:
		return id.Name == other.AsString(), true
	case vsl.KindHost:
		if o, isIdent := other.AsHost().(*Ident); isIdent {
			return id.Name == o.Name, true
		}
		return matchesRegex(id, other)
	}
	return false, false
}
