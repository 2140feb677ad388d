package object

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// Address is an email address object (type_of "address"). Its properties
// are local_part (a string) and domain (an fqdn object). Two addresses, or an
// address and a string, are the same mailbox when their local parts are
// equal and their domains are equal ignoring case.
type Address struct {
	Local, Domain string

	fq  FQDN      // Domain as an fqdn object
	dom vsl.Value // fq as a value, built once for the domain property
}

// ParseAddress parses "local@domain" or "<local@domain>", checking that the
// local part is a dot-atom or a quoted string and that the domain is a
// domain name or an address literal ([192.0.2.1], [IPv6:2001:db8::1]). The
// error names the problem.
func ParseAddress(s string) (*Address, error) {
	local, domain, err := checkAddress(strings.TrimSpace(s))
	if err != nil {
		return nil, &ParseError{Type: "address", Value: s, Err: err}
	}
	return newAddress(local, domain), nil
}

// AddressValue returns an address object for local@domain without checking
// either part (for addresses the MTA has already accepted).
func AddressValue(local, domain string) vsl.Value {
	return newAddress(local, domain).value()
}

func newAddress(local, domain string) *Address {
	a := &Address{Local: local, Domain: domain, fq: FQDN{Name: domain}}
	a.dom = vsl.Host(&a.fq)
	return a
}

func (a *Address) value() vsl.Value { return vsl.Host(a) }

// TypeName returns "address".
func (a *Address) TypeName() string { return "address" }

// String returns "local@domain".
func (a *Address) String() string { return a.Local + "@" + a.Domain }

// Equal compares with an address, a string (same mailbox) or a regex (which
// must match the address's text).
func (a *Address) Equal(other vsl.Value) (eq, ok bool) {
	switch other.Kind() {
	case vsl.KindString:
		local, domain, isAddr := splitAddress(other.AsString())
		return isAddr && local == a.Local && domainEqual(domain, a.Domain), true
	case vsl.KindHost:
		if o, isAddr := other.AsHost().(*Address); isAddr {
			return o.Local == a.Local && domainEqual(o.Domain, a.Domain), true
		}
		return matchesRegex(a, other)
	}
	return false, false
}

// Contains answers `x in address`: an identifier or a string is in the
// address when it equals its local part, an fqdn when it equals its domain.
func (a *Address) Contains(x vsl.Value) (bool, error) {
	switch x.Kind() {
	case vsl.KindString:
		return x.AsString() == a.Local, nil
	case vsl.KindHost:
		switch h := x.AsHost().(type) {
		case *Ident:
			return h.Name == a.Local, nil
		case *FQDN:
			return domainEqual(h.Name, a.Domain), nil
		}
	}
	return false, fmt.Errorf("cannot look for a %s in an address: only an identifier, a string (local part) or an fqdn (domain) can be", x.TypeName())
}

// Attr returns the properties local_part (a string) and domain (an fqdn).
func (a *Address) Attr(name string) (vsl.Value, bool, error) {
	switch name {
	case "local_part":
		return vsl.String(a.Local), true, nil
	case "domain":
		if a.dom.IsUnit() || a.fq.Name != a.Domain { // built as a literal, not by a constructor
			return FQDNValue(a.Domain), true, nil
		}
		return a.dom, true, nil
	}
	return vsl.Value{}, false, nil
}

// splitAddress splits "local@domain" or "<local@domain>" at its last '@'
// without checking the parts. It does not allocate.
func splitAddress(s string) (local, domain string, ok bool) {
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = s[1 : len(s)-1]
	}
	i := strings.LastIndexByte(s, '@')
	if i <= 0 || i == len(s)-1 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// checkAddress splits and validates an address.
func checkAddress(s string) (local, domain string, err error) {
	if strings.HasPrefix(s, "<") != strings.HasSuffix(s, ">") {
		return "", "", errors.New("unbalanced angle brackets")
	}
	if len(s) >= 2 && s[0] == '<' {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return "", "", errors.New("empty address (the null sender <> is not an address)")
	}
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return "", "", errors.New("missing '@'")
	}
	local, domain = s[:i], s[i+1:]
	if local == "" {
		return "", "", errors.New("empty local part")
	}
	if domain == "" {
		return "", "", errors.New("empty domain")
	}
	if err := checkLocalPart(local); err != nil {
		return "", "", fmt.Errorf("local part %q: %w", local, err)
	}
	if strings.HasPrefix(domain, "[") {
		if err := checkAddressLiteral(domain); err != nil {
			return "", "", fmt.Errorf("domain %s: %w", domain, err)
		}
		return local, domain, nil
	}
	if err := checkFQDN(domain); err != nil {
		return "", "", fmt.Errorf("domain %q: %w", domain, err)
	}
	return local, domain, nil
}

// checkLocalPart accepts a dot-atom (RFC 5321, with UTF-8 allowed as in RFC
// 6531) or a quoted string.
func checkLocalPart(s string) error {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		body := s[1 : len(s)-1]
		for i := 0; i < len(body); i++ {
			c := body[i]
			switch {
			case c == '\\':
				i++
				if i == len(body) {
					return errors.New("dangling backslash in quoted string")
				}
			case c == '"':
				return errors.New("unescaped '\"' in quoted string")
			case c < ' ' || c == 0x7f:
				return fmt.Errorf("control character %q in quoted string", c)
			}
		}
		return nil
	}
	if s[0] == '.' || s[len(s)-1] == '.' {
		return errors.New("leading or trailing '.'")
	}
	if strings.Contains(s, "..") {
		return errors.New("consecutive dots")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAtext(c) && c != '.' {
			return fmt.Errorf("character %q not allowed (quote the local part)", c)
		}
	}
	return nil
}

// isAtext reports whether c may appear in an atom (RFC 5322 atext, and any
// byte of a UTF-8 sequence).
func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80:
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// checkAddressLiteral accepts [IPv4] and [IPv6:addr].
func checkAddressLiteral(s string) error {
	if !strings.HasSuffix(s, "]") {
		return errors.New("address literal without ']'")
	}
	body := s[1 : len(s)-1]
	if v6, ok := strings.CutPrefix(body, "IPv6:"); ok {
		if a, err := netip.ParseAddr(v6); err != nil || !a.Is6() {
			return errors.New("not an IPv6 address literal")
		}
		return nil
	}
	if a, err := netip.ParseAddr(body); err != nil || !a.Is4() {
		return errors.New("not an IPv4 address literal")
	}
	return nil
}
