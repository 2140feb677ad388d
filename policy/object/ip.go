package object

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// IP is an IP address object: type_of is "ip4" for an IPv4 address and
// "ip6" for an IPv6 one. It compares with another IP or a string by
// address, an IPv4-mapped IPv6 address (::ffff:192.0.2.1) being the same
// as the IPv4 address, and zones ignored.
type IP struct {
	Addr netip.Addr
}

// IPValue returns an IP object for a, IPv4-mapped addresses unmapped (a
// client reported as ::ffff:192.0.2.1 is the ip4 192.0.2.1).
func IPValue(a netip.Addr) vsl.Value { return vsl.Host(&IP{Addr: a.Unmap()}) }

// TypeName returns "ip4" or "ip6".
func (ip *IP) TypeName() string {
	if ip.Addr.Is4() {
		return "ip4"
	}
	return "ip6"
}

// String returns the address in its canonical text form.
func (ip *IP) String() string { return ip.Addr.String() }

// Equal compares with an IP or a string holding an address, or matches a
// regex.
func (ip *IP) Equal(other vsl.Value) (eq, ok bool) {
	switch other.Kind() {
	case vsl.KindString:
		a, err := netip.ParseAddr(other.AsString())
		return err == nil && canonical(a) == canonical(ip.Addr), true
	case vsl.KindHost:
		if o, isIP := other.AsHost().(*IP); isIP {
			return canonical(o.Addr) == canonical(ip.Addr), true
		}
		return matchesRegex(ip, other)
	}
	return false, false
}

// canonical is the form addresses are compared in: no zone, IPv4-mapped
// addresses unmapped.
func canonical(a netip.Addr) netip.Addr { return a.WithZone("").Unmap() }

// parseIP parses an ip4 (family "ip4") or ip6 address.
func parseIP(typ, s string) (*IP, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return nil, &ParseError{Type: typ, Value: s, Err: netipReason(err)}
	}
	if typ == "ip4" && !a.Is4() {
		return nil, &ParseError{Type: typ, Value: s, Err: errors.New("not an IPv4 address")}
	}
	if typ == "ip6" && !a.Is6() {
		return nil, &ParseError{Type: typ, Value: s, Err: errors.New("not an IPv6 address (use ip4)")}
	}
	return &IP{Addr: a}, nil
}

// netipReason strips the `ParseAddr("...")` prefix net/netip puts in its
// errors, the value being named by ParseError already.
func netipReason(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "): "); i >= 0 && strings.HasPrefix(msg, "Parse") {
		return errors.New(msg[i+3:])
	}
	return err
}

// Range is a CIDR range object: type_of is "rg4" for an IPv4 range and
// "rg6" for an IPv6 one. `x in range` holds when x, an IP or a string
// holding an address or a range, lies in the range.
type Range struct {
	Prefix netip.Prefix
}

// RangeValue returns a range object for p (with its host bits cleared).
func RangeValue(p netip.Prefix) vsl.Value { return vsl.Host(&Range{Prefix: p.Masked()}) }

// TypeName returns "rg4" or "rg6".
func (r *Range) TypeName() string {
	if r.Prefix.Addr().Is4() {
		return "rg4"
	}
	return "rg6"
}

// String returns the range in CIDR notation.
func (r *Range) String() string { return r.Prefix.String() }

// Equal compares with a range or a string holding the same range, or
// matches a regex.
func (r *Range) Equal(other vsl.Value) (eq, ok bool) {
	switch other.Kind() {
	case vsl.KindString:
		p, err := netip.ParsePrefix(other.AsString())
		return err == nil && p.Masked() == r.Prefix.Masked(), true
	case vsl.KindHost:
		if o, isRange := other.AsHost().(*Range); isRange {
			return o.Prefix.Masked() == r.Prefix.Masked(), true
		}
		return matchesRegex(r, other)
	}
	return false, false
}

// Contains answers `x in range` for an IP, a range (contained entirely) or
// a string holding either; a string that is neither is not in the range.
func (r *Range) Contains(x vsl.Value) (bool, error) {
	switch x.Kind() {
	case vsl.KindString:
		s := x.AsString()
		if a, err := netip.ParseAddr(s); err == nil {
			return prefixContains(r.Prefix, a), nil
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			return prefixCovers(r.Prefix, p), nil
		}
		return false, nil
	case vsl.KindHost:
		switch h := x.AsHost().(type) {
		case *IP:
			return prefixContains(r.Prefix, h.Addr), nil
		case *Range:
			return prefixCovers(r.Prefix, h.Prefix), nil
		}
	}
	return false, fmt.Errorf("cannot look for a %s in a %s: only an IP address, a range or a string holding one can be", x.TypeName(), r.TypeName())
}

// prefixContains reports whether a lies in p. An IPv4 address is looked up
// in an IPv6 range by its IPv4-mapped form.
func prefixContains(p netip.Prefix, a netip.Addr) bool {
	a = canonical(a)
	if p.Contains(a) {
		return true
	}
	return a.Is4() && p.Addr().Is6() && p.Contains(netip.AddrFrom16(a.As16()))
}

// prefixCovers reports whether every address of q lies in p. An IPv4
// range is looked up in an IPv6 range by its IPv4-mapped form.
func prefixCovers(p, q netip.Prefix) bool {
	q = q.Masked()
	if q.Addr().Is4() && p.Addr().Is6() {
		q = mapped(q)
	}
	return q.Bits() >= p.Bits() && p.Contains(q.Addr())
}

// mapped returns the IPv4-mapped IPv6 form of an IPv4 range.
func mapped(q netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16(q.Addr().As16()), q.Bits()+96)
}

// parseRange parses an rg4 (family "rg4") or rg6 range in CIDR notation; a
// bare address is the range of that address alone (/32 or /128). Host bits
// are cleared: 10.1.2.3/8 is 10.0.0.0/8.
func parseRange(typ, s string) (*Range, error) {
	t := strings.TrimSpace(s)
	var p netip.Prefix
	if strings.IndexByte(t, '/') >= 0 {
		var err error
		if p, err = netip.ParsePrefix(t); err != nil {
			return nil, &ParseError{Type: typ, Value: s, Err: netipReason(err)}
		}
	} else {
		a, err := netip.ParseAddr(t)
		if err != nil {
			return nil, &ParseError{Type: typ, Value: s, Err: netipReason(err)}
		}
		if a.Zone() != "" {
			return nil, &ParseError{Type: typ, Value: s, Err: errors.New("a range has no zone")}
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if typ == "rg4" && !p.Addr().Is4() {
		return nil, &ParseError{Type: typ, Value: s, Err: errors.New("not an IPv4 range")}
	}
	if typ == "rg6" && !p.Addr().Is6() {
		return nil, &ParseError{Type: typ, Value: s, Err: errors.New("not an IPv6 range (use rg4)")}
	}
	return &Range{Prefix: p.Masked()}, nil
}
