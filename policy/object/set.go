package object

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// Where an index entry came from. An element equals a value by the rules of
// the element's type: a plain string element equals a string exactly, but an
// address, an fqdn or an IP by the object's rules, so string elements are
// also indexed under those types' keys, flagged so that a string looking for
// its equal does not find them there.
const (
	fromObject uint8 = 1 << iota // an element of the index's type
	fromString                   // a plain string element
)

// set is the compiled form of a group or a file list: `x in list` holds when
// some element equals x (or, for range elements, holds it), and set answers
// that with hash lookups keyed by normalized values (lower-cased domains,
// canonical addresses) and a prefixTable of the ranges. It is built once and
// only read afterwards, by any number of goroutines.
type set struct {
	strs    map[string]struct{}       // strings and identifiers, exact
	fqdns   map[string]uint8          // by fqdnKey
	addrs   map[string]uint8          // by local@fqdnKey(domain)
	ips     map[netip.Addr]uint8      // by canonical address
	nets    *prefixTable              // range elements, for containment
	strNets map[netip.Prefix]struct{} // string elements holding a range, masked
	regexes []*regexp.Regexp
	re      *regexp.Regexp // the alternation of regexes, set by finish
	others  []vsl.Value    // elements without an index, compared one by one
	subs    []*set         // nested groups and files
	hint    int            // expected number of elements, to size the maps
}

// add indexes one element. Nested arrays are flattened, nested groups and
// files are looked up through their own sets.
func (s *set) add(v vsl.Value) {
	switch v.Kind() {
	case vsl.KindString:
		s.addString(v.AsString())
		return
	case vsl.KindArray:
		for _, e := range v.AsArray().Elems {
			s.add(e)
		}
		return
	case vsl.KindHost:
		switch h := v.AsHost().(type) {
		case *Address:
			s.addAddr("", h.Local, h.Domain, fromObject)
			return
		case *FQDN:
			s.addFQDN(h.Name, fromObject)
			return
		case *Ident:
			s.addStr(h.Name)
			return
		case *IP:
			s.addIP(h.Addr, fromObject)
			return
		case *Range:
			s.addRange(h.Prefix)
			return
		case *Regex:
			s.regexes = append(s.regexes, h.Re)
			return
		case *Group:
			s.subs = append(s.subs, h.set)
			return
		case *File:
			s.subs = append(s.subs, h.set)
			return
		}
	}
	s.others = append(s.others, v)
}

// addTyped parses one line of a file:TYPE list and indexes it.
func (s *set) addTyped(typ, text string) error {
	switch typ {
	case "fqdn":
		if err := checkFQDN(text); err != nil {
			return &ParseError{Type: typ, Value: text, Err: err}
		}
		s.addFQDN(text, fromObject)
	case "address":
		local, domain, err := checkAddress(text)
		if err != nil {
			return &ParseError{Type: typ, Value: text, Err: err}
		}
		s.addAddr(text, local, domain, fromObject)
	case "ip4", "ip6":
		ip, err := parseIP(typ, text)
		if err != nil {
			return err
		}
		s.addIP(ip.Addr, fromObject)
	case "rg4", "rg6":
		r, err := parseRange(typ, text)
		if err != nil {
			return err
		}
		s.addRange(r.Prefix)
	case "ident", "identifier":
		s.addStr(text)
	case "string":
		s.addString(text)
	case "regex":
		r, err := ParseRegex(text)
		if err != nil {
			return err
		}
		s.regexes = append(s.regexes, r.Re)
	default:
		return fmt.Errorf("unknown file content type %q", typ)
	}
	return nil
}

// finish completes the set once every element is added: it merges the
// ranges' intervals and compiles the regex elements into one alternation,
// so that a lookup runs one regex whatever their number.
func (s *set) finish() {
	if s.nets != nil {
		s.nets.finish()
	}
	switch len(s.regexes) {
	case 0:
	case 1:
		s.re = s.regexes[0]
	default:
		parts := make([]string, len(s.regexes))
		for i, r := range s.regexes {
			parts[i] = "(?:" + r.String() + ")"
		}
		// Each pattern compiled alone, so their alternation compiles too;
		// should it not, the regexes are tried one by one.
		if re, err := regexp.Compile(strings.Join(parts, "|")); err == nil {
			s.re = re
		}
	}
}

// sizeFor is the initial size of a map of entries coming from: the
// expected number of elements for the list's own type, none for the
// secondary indexes of string elements, which few strings may fill.
func (s *set) sizeFor(from uint8) int {
	if from == fromString {
		return 0
	}
	return s.hint
}

func (s *set) addStr(str string) {
	if s.strs == nil {
		s.strs = make(map[string]struct{}, s.hint)
	}
	s.strs[str] = struct{}{}
}

// addString indexes a plain string element: exactly, and as the address,
// fqdn, IP or range it may hold.
func (s *set) addString(str string) {
	s.addStr(str)
	s.addFQDN(str, fromString)
	if local, domain, ok := splitAddress(str); ok {
		s.addAddr(str, local, domain, fromString)
	}
	if a, err := netip.ParseAddr(str); err == nil {
		s.addIP(a, fromString)
	} else if p, err := netip.ParsePrefix(str); err == nil {
		if s.strNets == nil {
			s.strNets = make(map[netip.Prefix]struct{})
		}
		s.strNets[p.Masked()] = struct{}{}
	}
}

func (s *set) addFQDN(name string, from uint8) {
	if s.fqdns == nil {
		s.fqdns = make(map[string]uint8, s.sizeFor(from))
	}
	k := fqdnKey(name)
	s.fqdns[k] |= from
}

// addAddr indexes local@domain; text is the element's text, which holds
// local and domain, and is the key itself when it is already normalized.
func (s *set) addAddr(text, local, domain string, from uint8) {
	if s.addrs == nil {
		s.addrs = make(map[string]uint8, s.sizeFor(from))
	}
	k := text
	if d := fqdnKey(domain); d != domain || len(text) != len(local)+1+len(domain) {
		k = local + "@" + d
	}
	s.addrs[k] |= from
}

func (s *set) addIP(a netip.Addr, from uint8) {
	if s.ips == nil {
		s.ips = make(map[netip.Addr]uint8, s.sizeFor(from))
	}
	s.ips[canonical(a)] |= from
}

func (s *set) addRange(p netip.Prefix) {
	if s.nets == nil {
		s.nets = &prefixTable{}
	}
	s.nets.add(p)
}

// has reports whether some element equals x. indexed is false when x is of
// a kind the set does not index (a code, a regex, a group...): the caller
// then compares x with the elements one by one.
func (s *set) has(x vsl.Value) (found, indexed bool) {
	switch x.Kind() {
	case vsl.KindString:
		return s.hasString(x.AsString()), true
	case vsl.KindHost:
		switch h := x.AsHost().(type) {
		case *Address:
			return s.hasAddress(h), true
		case *FQDN:
			return s.hasFQDN(h), true
		case *IP:
			return s.hasIP(h.Addr), true
		case *Range:
			return s.hasRange(h.Prefix), true
		case *Ident:
			return s.hasIdent(h.Name), true
		}
	}
	return false, false
}

func (s *set) hasString(str string) bool {
	if _, ok := s.strs[str]; ok {
		return true
	}
	if len(s.fqdns) > 0 && lookupFQDN(s.fqdns, str)&fromObject != 0 {
		return true
	}
	if len(s.addrs) > 0 {
		if local, domain, ok := splitAddress(str); ok && lookupAddr(s.addrs, local, domain)&fromObject != 0 {
			return true
		}
	}
	if len(s.ips) > 0 || s.nets != nil {
		if a, err := netip.ParseAddr(str); err == nil {
			if s.ips[canonical(a)]&fromObject != 0 || s.nets != nil && s.nets.contains(a) {
				return true
			}
		} else if s.nets != nil {
			if p, err := netip.ParsePrefix(str); err == nil && s.nets.covers(p) {
				return true
			}
		}
	}
	if s.matchRegex(str) {
		return true
	}
	if len(s.others) == 0 && len(s.subs) == 0 {
		return false
	}
	return s.hasOther(vsl.String(str), func(sub *set) bool { return sub.hasString(str) })
}

func (s *set) hasAddress(a *Address) bool {
	if len(s.addrs) > 0 && lookupAddr(s.addrs, a.Local, a.Domain) != 0 {
		return true
	}
	if s.hasRegexes() && s.matchRegex(a.String()) {
		return true
	}
	if len(s.others) == 0 && len(s.subs) == 0 {
		return false
	}
	return s.hasOther(vsl.Host(a), func(sub *set) bool { return sub.hasAddress(a) })
}

func (s *set) hasFQDN(f *FQDN) bool {
	if len(s.fqdns) > 0 && lookupFQDN(s.fqdns, f.Name) != 0 {
		return true
	}
	if s.matchRegex(f.Name) {
		return true
	}
	if len(s.others) == 0 && len(s.subs) == 0 {
		return false
	}
	return s.hasOther(vsl.Host(f), func(sub *set) bool { return sub.hasFQDN(f) })
}

func (s *set) hasIP(a netip.Addr) bool {
	if len(s.ips) > 0 && s.ips[canonical(a)] != 0 {
		return true
	}
	if s.nets != nil && s.nets.contains(a) {
		return true
	}
	if s.hasRegexes() && s.matchRegex(canonical(a).String()) {
		return true
	}
	if len(s.others) == 0 && len(s.subs) == 0 {
		return false
	}
	return s.hasOther(vsl.Host(&IP{Addr: a}), func(sub *set) bool { return sub.hasIP(a) })
}

func (s *set) hasRange(p netip.Prefix) bool {
	if s.nets != nil && s.nets.covers(p) {
		return true
	}
	if _, ok := s.strNets[p.Masked()]; ok {
		return true
	}
	if s.hasRegexes() && s.matchRegex(p.String()) {
		return true
	}
	if len(s.others) == 0 && len(s.subs) == 0 {
		return false
	}
	return s.hasOther(vsl.Host(&Range{Prefix: p}), func(sub *set) bool { return sub.hasRange(p) })
}

func (s *set) hasIdent(name string) bool {
	if _, ok := s.strs[name]; ok {
		return true
	}
	if s.matchRegex(name) {
		return true
	}
	if len(s.others) == 0 && len(s.subs) == 0 {
		return false
	}
	return s.hasOther(vsl.Host(&Ident{Name: name}), func(sub *set) bool { return sub.hasIdent(name) })
}

func (s *set) hasRegexes() bool { return len(s.regexes) > 0 }

func (s *set) matchRegex(str string) bool {
	if s.re != nil {
		return s.re.MatchString(str)
	}
	for _, r := range s.regexes {
		if r.MatchString(str) {
			return true
		}
	}
	return false
}

// hasOther compares x with the unindexed elements and looks it up in the
// nested sets with inSub. Callers skip it when the set has neither, as most
// sets do, so as not to build x.
func (s *set) hasOther(x vsl.Value, inSub func(*set) bool) bool {
	for _, e := range s.others {
		if vsl.Equal(x, e) {
			return true
		}
	}
	return slices.ContainsFunc(s.subs, inSub)
}

// fqdnKey is the index key of a domain name: lower case, without a
// trailing dot.
func fqdnKey(name string) string {
	name = strings.TrimSuffix(name, ".")
	if !isASCII(name) {
		return strings.ToLower(name)
	}
	if !hasUpper(name) {
		return name
	}
	b := []byte(name)
	lowerASCII(b, name)
	return string(b)
}

// lookupFQDN returns the flags of name's entry in m, lower-casing into a
// stack buffer rather than allocating.
func lookupFQDN(m map[string]uint8, name string) uint8 {
	name = strings.TrimSuffix(name, ".")
	if !isASCII(name) {
		return m[strings.ToLower(name)]
	}
	if !hasUpper(name) {
		return m[name]
	}
	var buf [256]byte
	if len(name) > len(buf) {
		return m[fqdnKey(name)]
	}
	b := buf[:len(name)]
	lowerASCII(b, name)
	return m[string(b)]
}

// lookupAddr returns the flags of local@domain's entry in m, building the
// key in a stack buffer rather than allocating.
func lookupAddr(m map[string]uint8, local, domain string) uint8 {
	domain = strings.TrimSuffix(domain, ".")
	var buf [320]byte
	n := len(local) + 1 + len(domain)
	if n > len(buf) || !isASCII(domain) {
		return m[local+"@"+fqdnKey(domain)]
	}
	b := buf[:n]
	copy(b, local)
	b[len(local)] = '@'
	lowerASCII(b[len(local)+1:], domain)
	return m[string(b)]
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

// lowerASCII writes s lower-cased into dst (len(dst) == len(s)).
func lowerASCII(dst []byte, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
}

// prefixTable holds ranges two ways, both built once:
//   - sorted, merged intervals of addresses, so that an address lies in
//     some range when a binary search finds the interval holding it
//     (about 17 steps for 100,000 ranges);
//   - one hash set per prefix length, so that a range lies inside some
//     range when, for some length present no longer than its own, its
//     first bits are in that length's set (one probe per distinct length).
type prefixTable struct {
	v4    [33]map[uint32]struct{}
	v6    [129]map[u128]struct{}
	lens4 []int // lengths present, longest first
	lens6 []int
	iv4   []span[uint32] // by finish
	iv6   []span[u128]
}

// u128 is an IPv6 address as a number.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

// span is an interval of addresses, bounds included.
type span[T uint32 | u128] struct{ lo, hi T }

func (t *prefixTable) add(p netip.Prefix) {
	p = p.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		if t.v4[bits] == nil {
			t.v4[bits] = make(map[uint32]struct{})
			t.lens4 = insertLen(t.lens4, bits)
		}
		k := v4Key(p.Addr(), bits)
		t.v4[bits][k] = struct{}{}
		t.iv4 = append(t.iv4, span[uint32]{k, k | ^uint32(0)>>bits})
		return
	}
	if t.v6[bits] == nil {
		t.v6[bits] = make(map[u128]struct{})
		t.lens6 = insertLen(t.lens6, bits)
	}
	k := v6Key(p.Addr(), bits)
	t.v6[bits][k] = struct{}{}
	t.iv6 = append(t.iv6, span[u128]{k, u128{k.hi | hostMask(bits), k.lo | hostMask(bits-64)}})
}

// hostMask returns the host bits of a 64-bit word of which the first bits
// belong to the network (bits ≤ 0: all, bits ≥ 64: none).
func hostMask(bits int) uint64 {
	switch {
	case bits <= 0:
		return ^uint64(0)
	case bits >= 64:
		return 0
	}
	return ^uint64(0) >> bits
}

// finish sorts and merges the intervals.
func (t *prefixTable) finish() {
	t.iv4 = mergeSpans(t.iv4, func(a, b uint32) bool { return a < b })
	t.iv6 = mergeSpans(t.iv6, u128.less)
}

// mergeSpans sorts spans by their start and merges those that overlap.
func mergeSpans[T uint32 | u128](spans []span[T], less func(a, b T) bool) []span[T] {
	slices.SortFunc(spans, func(a, b span[T]) int {
		switch {
		case less(a.lo, b.lo):
			return -1
		case less(b.lo, a.lo):
			return 1
		}
		return 0
	})
	out := spans[:0]
	for _, sp := range spans {
		if n := len(out); n > 0 && !less(out[n-1].hi, sp.lo) {
			if less(out[n-1].hi, sp.hi) {
				out[n-1].hi = sp.hi
			}
			continue
		}
		out = append(out, sp)
	}
	return slices.Clip(out)
}

// insertLen adds n to lens, kept in decreasing order.
func insertLen(lens []int, n int) []int {
	i, _ := slices.BinarySearchFunc(lens, n, func(a, b int) int { return b - a })
	return slices.Insert(lens, i, n)
}

// contains reports whether a lies in some range (an IPv4 address is also
// looked up among IPv6 ranges by its IPv4-mapped form).
func (t *prefixTable) contains(a netip.Addr) bool {
	a = canonical(a)
	if a.Is4() {
		x := v4Key(a, 32)
		iv := t.iv4
		lo, hi := 0, len(iv) // find the first span starting after x
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if iv[m].lo <= x {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if lo > 0 && x <= iv[lo-1].hi {
			return true
		}
		if len(t.iv6) == 0 {
			return false
		}
		a = netip.AddrFrom16(a.As16())
	}
	x := v6Key(a, 128)
	iv := t.iv6
	lo, hi := 0, len(iv)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !x.less(iv[m].lo) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo > 0 && !iv[lo-1].hi.less(x)
}

// covers reports whether some range holds every address of q.
func (t *prefixTable) covers(q netip.Prefix) bool {
	q = q.Masked()
	if q.Addr().Is4() {
		for _, n := range t.lens4 {
			if n > q.Bits() {
				continue
			}
			if _, ok := t.v4[n][v4Key(q.Addr(), n)]; ok {
				return true
			}
		}
		if len(t.lens6) == 0 {
			return false
		}
		q = mapped(q)
	}
	for _, n := range t.lens6 {
		if n > q.Bits() {
			continue
		}
		if _, ok := t.v6[n][v6Key(q.Addr(), n)]; ok {
			return true
		}
	}
	return false
}

// v4Key returns the first bits of an IPv4 address.
func v4Key(a netip.Addr, bits int) uint32 {
	b := a.As4()
	u := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	return u &^ (^uint32(0) >> bits)
}

// v6Key returns the first bits of an IPv6 address.
func v6Key(a netip.Addr, bits int) u128 {
	b := a.As16()
	var k u128
	for i := 0; i < 8; i++ {
		k.hi = k.hi<<8 | uint64(b[i])
		k.lo = k.lo<<8 | uint64(b[8+i])
	}
	k.hi &^= hostMask(bits)
	k.lo &^= hostMask(bits - 64)
	return k
}
