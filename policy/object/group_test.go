package object

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// writeFile writes a list file in dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// membership is one `x in list` case.
type membership struct {
	x    vsl.Value
	want bool
}

func checkMembership(t *testing.T, list vsl.HostContainer, tests []membership) {
	t.Helper()
	for _, tt := range tests {
		got, err := list.Contains(tt.x)
		if err != nil {
			t.Errorf("%s in list: %v", vsl.Debug(tt.x), err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s in %s: got %v, want %v", vsl.Debug(tt.x), list.(vsl.HostValue).String(), got, tt.want)
		}
	}
}

func TestGroupContains(t *testing.T) {
	p := func(typ, s string) vsl.Value { return mustParse(t, typ, s) }
	ip := func(s string) vsl.Value { return IPValue(netip.MustParseAddr(s)) }
	nested, err := NewGroup([]vsl.Value{p("address", "jimmy@doe.com"), p("fqdn", "nested.example")})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGroup([]vsl.Value{
		p("address", "john@doe.com"),
		p("fqdn", "Doe.Family"),
		p("ip4", "192.0.2.1"),
		p("ip6", "2001:db8::1"),
		p("rg4", "10.0.0.0/8"),
		p("rg6", "2001:db8:ff::/48"),
		IdentValue("jane"),
		vsl.String("jenny@doe.com"),
		vsl.String("198.51.100.0/24"),
		p("regex", `^spam[0-9]+@`),
		p("code", "550 5.7.1 no"),
		vsl.Host(nested),
		vsl.NewArray([]vsl.Value{p("fqdn", "in.array.example")}),
	})
	if err != nil {
		t.Fatal(err)
	}
	checkMembership(t, g, []membership{
		// addresses: same mailbox.
		{p("address", "john@DOE.com"), true},
		{vsl.String("john@doe.COM"), true},
		{vsl.String("<john@doe.com>"), true},
		{vsl.String("John@doe.com"), false},
		// a string element equals an address by the address's rules, but
		// a string exactly.
		{p("address", "jenny@DOE.com"), true},
		{vsl.String("jenny@doe.com"), true},
		{vsl.String("jenny@DOE.com"), false},
		// fqdn: case and trailing dot ignored.
		{p("fqdn", "doe.family."), true},
		{vsl.String("DOE.FAMILY"), true},
		{vsl.String("doe.famil"), false},
		// ip and ranges: addresses, containment.
		{ip("192.0.2.1"), true},
		{vsl.String("::ffff:192.0.2.1"), true},
		{ip("192.0.2.2"), false},
		{vsl.String("2001:DB8::1"), true},
		{ip("10.20.30.40"), true},
		{vsl.String("10.20.30.40"), true},
		{p("rg4", "10.1.0.0/16"), true},
		{p("rg4", "11.0.0.0/8"), false},
		{ip("2001:db8:ff:1::9"), true},
		{ip("2001:db8:fe::9"), false},
		// a string element holding a range equals that range.
		{p("rg4", "198.51.100.0/24"), true},
		{ip("198.51.100.7"), false},
		// identifiers and strings: exact.
		{IdentValue("jane"), true},
		{vsl.String("jane"), true},
		{vsl.String("Jane"), false},
		{IdentValue("jenny@doe.com"), true},
		// regex elements match.
		{vsl.String("spam42@anything"), true},
		{p("address", "spam7@evil.example"), true},
		{vsl.String("ham42@anything"), false},
		// other elements are compared one by one.
		{p("code", "550 5.7.1 no"), true},
		{vsl.String("550 5.7.1 no"), true},
		{p("code", "550 5.7.1 yes"), false},
		// nested groups and arrays.
		{vsl.String("jimmy@doe.com"), true},
		{p("fqdn", "NESTED.example"), true},
		{vsl.String("in.array.example"), true},
		{vsl.Int(3), false},
	})

	if g.TypeName() != "group" || g.Len() != 13 || len(g.Elems()) != 13 {
		t.Errorf("group: type %s, len %d", g.TypeName(), g.Len())
	}
	if _, isGroup := g.Elems()[12].AsHost().(*Group); !isGroup {
		t.Errorf("a nested array is not a nested group: %s", g.Elems()[12].TypeName())
	}
}

func TestGroupErrorsAndEqual(t *testing.T) {
	for _, bad := range []vsl.Value{vsl.NewMap(nil), vsl.Unit(), vsl.NewRange(1, 2, false)} {
		_, err := NewGroup([]vsl.Value{vsl.String("a"), bad})
		if err == nil || !strings.Contains(err.Error(), "element 1 is a") {
			t.Errorf("NewGroup with a %s: error %v", bad.TypeName(), err)
		}
	}
	_, err := NewGroup([]vsl.Value{vsl.NewArray([]vsl.Value{vsl.Unit()})})
	if err == nil || err.Error() != "element 0: element 0 is a (): a group holds objects and strings" {
		t.Errorf("nested bad element: error %v", err)
	}

	a := []vsl.Value{AddressValue("john", "doe.com"), vsl.String("x")}
	g1, _ := NewGroup(a)
	g2, _ := NewGroup([]vsl.Value{vsl.String("john@DOE.com"), vsl.String("x")})
	g3, _ := NewGroup([]vsl.Value{vsl.String("x")})
	tests := []struct {
		a, b vsl.Value
		want bool
	}{
		{vsl.Host(g1), vsl.Host(g2), true},
		{vsl.Host(g1), vsl.NewArray(a), true},
		{vsl.Host(g1), vsl.Host(g3), false},
		{vsl.Host(g1), vsl.String("x"), false},
	}
	for _, tt := range tests {
		if got := vsl.Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("%s == %s: got %v", vsl.Debug(tt.a), vsl.Debug(tt.b), got)
		}
	}
	if got, want := g1.String(), `[john@doe.com, "x"]`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

func TestListAttrs(t *testing.T) {
	g, err := NewGroup([]vsl.Value{AddressValue("john", "doe.com"), vsl.String("jane@Doe.Org")})
	if err != nil {
		t.Fatal(err)
	}
	lp, ok, err := g.Attr("local_parts")
	if !ok || err != nil || vsl.Debug(lp) != `["john", "jane"]` {
		t.Errorf("local_parts = %s, %v, %v", vsl.Debug(lp), ok, err)
	}
	doms, ok, err := g.Attr("domains")
	if !ok || err != nil || vsl.Debug(doms) != `[doe.com, Doe.Org]` || doms.AsArray().Elems[1].TypeName() != "fqdn" {
		t.Errorf("domains = %s, %v, %v", vsl.Debug(doms), ok, err)
	}
	if n, ok, _ := g.Attr("len"); !ok || n.AsInt() != 2 {
		t.Errorf("len = %s", vsl.Debug(n))
	}
	if _, ok, _ := g.Attr("nope"); ok {
		t.Error("Attr(nope) found")
	}
	bad, _ := NewGroup([]vsl.Value{AddressValue("john", "doe.com"), FQDNValue("doe.com")})
	if _, _, err := bad.Attr("domains"); err == nil || err.Error() != "element 1 is a fqdn, not an address" {
		t.Errorf("domains of a mixed group: error %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		typ, content string
		members      []membership
		len          int
		str          string
	}{
		{
			typ:     "fqdn",
			content: "# blacklist\nspam.example\n\n  Evil.Example.  \r\nnested.spam.example\n",
			members: []membership{
				{vsl.String("spam.example"), true},
				{vsl.String("EVIL.example"), true},
				{FQDNValue("evil.example."), true},
				{vsl.String("other.example"), false},
				{vsl.String("# blacklist"), false},
			},
			len: 3,
			str: "[spam.example, Evil.Example., nested.spam.example]",
		},
		{
			typ:     "address",
			content: "john@doe.com\n<jane@Doe.com>\n",
			members: []membership{
				{AddressValue("john", "DOE.COM"), true},
				{vsl.String("jane@doe.com"), true},
				{vsl.String("Jane@doe.com"), false},
			},
			len: 2,
			str: "[john@doe.com, jane@Doe.com]",
		},
		{
			typ:     "ip4",
			content: "192.0.2.1\n192.0.2.2\n",
			members: []membership{
				{IPValue(netip.MustParseAddr("192.0.2.2")), true},
				{vsl.String("::ffff:192.0.2.1"), true},
				{vsl.String("192.0.2.3"), false},
			},
			len: 2,
		},
		{
			typ:     "rg4",
			content: "10.0.0.0/8\n192.0.2.0/24\n203.0.113.7\n",
			members: []membership{
				{vsl.String("10.9.8.7"), true},
				{IPValue(netip.MustParseAddr("192.0.2.200")), true},
				{vsl.String("203.0.113.7"), true},
				{vsl.String("203.0.113.8"), false},
				{mustParse(t, "rg4", "192.0.2.128/25"), true},
				{mustParse(t, "rg4", "192.0.0.0/16"), false},
			},
			len: 3,
			str: "[10.0.0.0/8, 192.0.2.0/24, 203.0.113.7/32]",
		},
		{
			typ:     "rg6",
			content: "2001:db8::/32\n",
			members: []membership{
				{vsl.String("2001:db8:1::1"), true},
				{vsl.String("2001:db9::1"), false},
			},
			len: 1,
		},
		{
			typ:     "ident",
			content: "john\njane\n",
			members: []membership{{vsl.String("john"), true}, {IdentValue("jane"), true}, {vsl.String("JOHN"), false}},
			len:     2,
		},
		{
			typ:     "string",
			content: "doe/virus\nJohn@Doe.com\n",
			members: []membership{{vsl.String("doe/virus"), true}, {vsl.String("john@doe.com"), false}, {AddressValue("John", "doe.com"), true}},
			len:     2,
			str:     `["doe/virus", "John@Doe.com"]`,
		},
		{
			typ:     "regex",
			content: "^spam\n(?i)VIAGRA\n",
			members: []membership{{vsl.String("spammer"), true}, {vsl.String("buy viagra"), true}, {vsl.String("ham"), false}, {vsl.String("a spam"), false}},
			len:     2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			path := writeFile(t, dir, tt.typ+".txt", tt.content)
			f, err := LoadFile(path, tt.typ)
			if err != nil {
				t.Fatal(err)
			}
			checkMembership(t, f, tt.members)
			if f.Len() != tt.len || len(f.Elems()) != tt.len || f.TypeName() != "file" || f.Path != path || f.Type != tt.typ {
				t.Errorf("file: len %d, elems %d, type %s", f.Len(), len(f.Elems()), f.TypeName())
			}
			if tt.str != "" && f.String() != tt.str {
				t.Errorf("String() = %s, want %s", f.String(), tt.str)
			}
			for _, e := range f.Elems() {
				if e.TypeName() != tt.typ {
					t.Errorf("element %s has type %s in a file:%s", vsl.Debug(e), e.TypeName(), tt.typ)
				}
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.txt", "ok.example\n\nnot a domain\n")
	missing := filepath.Join(dir, "missing.txt")
	tests := []struct {
		path, typ, err string
	}{
		{bad, "fqdn", bad + `:3: invalid fqdn "not a domain": character ' ' not allowed in a domain name`},
		{writeFile(t, dir, "ip.txt", "192.0.2.1\n300.1.1.1\n"), "ip4", `ip.txt:2: invalid ip4 "300.1.1.1": IPv4 field has value >255`},
		{writeFile(t, dir, "re.txt", "a(\n"), "regex", `re.txt:1: invalid regex "a("`},
		{missing, "fqdn", "file:fqdn list " + missing + ": no such file or directory"},
		{bad, "color", `unknown file content type "color"`},
	}
	for _, tt := range tests {
		_, err := LoadFile(tt.path, tt.typ)
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("LoadFile(%s, %s) error %v, want %q", tt.path, tt.typ, err, tt.err)
		}
	}
	if _, err := LoadFile(missing, "fqdn"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: error %v is not fs.ErrNotExist", err)
	}
}

func TestFileStringTruncates(t *testing.T) {
	var b strings.Builder
	for i := range 40 {
		b.WriteString("h" + string(rune('a'+i%26)) + ".example\n")
	}
	f, err := LoadFile(writeFile(t, t.TempDir(), "many.txt", b.String()), "fqdn")
	if err != nil {
		t.Fatal(err)
	}
	s := f.String()
	if !strings.HasPrefix(s, "[ha.example, hb.example, ") || !strings.HasSuffix(s, ", ... (8 more)]") {
		t.Errorf("String() = %s", s)
	}
}

func TestPrefixTable(t *testing.T) {
	var pt prefixTable
	for _, s := range []string{"10.0.0.0/8", "10.1.0.0/16", "192.0.2.128/25", "0.0.0.0/0", "2001:db8::/32", "::ffff:198.51.100.0/120"} {
		pt.add(netip.MustParsePrefix(s))
	}
	pt.finish()
	if got := pt.lens4; len(got) != 4 || got[0] != 25 || got[3] != 0 {
		t.Errorf("lens4 = %v, want [25 16 8 0]", got)
	}
	for _, tt := range []struct {
		a    string
		want bool
	}{
		{"10.1.2.3", true}, {"203.0.113.1", true}, {"2001:db8::5", true}, {"2001:db9::5", false},
		{"198.51.100.9", true}, {"::ffff:198.51.100.9", true},
	} {
		if got := pt.contains(netip.MustParseAddr(tt.a)); got != tt.want {
			t.Errorf("contains(%s) = %v", tt.a, got)
		}
	}
	var only6 prefixTable
	only6.add(netip.MustParsePrefix("2001:db8::/32"))
	only6.finish()
	for _, tt := range []struct {
		p    string
		want bool
	}{
		{"2001:db8:1::/48", true}, {"2001:db8::/31", false}, {"2001:db8::1/128", true}, {"10.0.0.0/8", false},
	} {
		if got := only6.covers(netip.MustParsePrefix(tt.p)); got != tt.want {
			t.Errorf("covers(%s) = %v", tt.p, got)
		}
	}
}

// TestPrefixTableRandom checks contains and covers against a scan of the
// ranges, on random overlapping and nested IPv4 and IPv6 ranges.
func TestPrefixTableRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	randAddr := func(v6 bool) netip.Addr {
		if v6 {
			var b [16]byte
			b[0], b[1] = 0x20, 0x01 // stay near each other so ranges overlap
			for i := 2; i < 16; i++ {
				b[i] = byte(rng.IntN(4))
			}
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
	}
	for round := range 20 {
		var pt prefixTable
		var prefixes []netip.Prefix
		for range 1 + rng.IntN(50) {
			v6 := rng.IntN(3) == 0
			bits := 8 + rng.IntN(25)
			if v6 {
				bits = 16 + rng.IntN(113)
			}
			p := netip.PrefixFrom(randAddr(v6), bits).Masked()
			prefixes = append(prefixes, p)
			pt.add(p)
		}
		pt.finish()
		for range 500 {
			v6 := rng.IntN(3) == 0
			a := randAddr(v6)
			want := slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a) })
			if got := pt.contains(a); got != want {
				t.Fatalf("round %d: contains(%s) = %v, want %v; ranges %v", round, a, got, want, prefixes)
			}
			bits := a.BitLen() - rng.IntN(24)
			q := netip.PrefixFrom(a, bits).Masked()
			want = slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return prefixCovers(p, q) })
			if got := pt.covers(q); got != want {
				t.Fatalf("round %d: covers(%s) = %v, want %v; ranges %v", round, q, got, want, prefixes)
			}
		}
	}
}

// TestConcurrentUse checks that rules of concurrent transactions may share
// lists and objects: lookups, the first iteration of a file and properties
// from many goroutines at once (run with -race).
func TestConcurrentUse(t *testing.T) {
	f, err := LoadFile(writeFile(t, t.TempDir(), "l.txt", "a.example\nb.example\n10.0.0.0/8\n"), "string")
	if err != nil {
		t.Fatal(err)
	}
	addr := AddressValue("john", "doe.com").AsHost().(*Address)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if ok, _ := f.Contains(vsl.String("b.example")); !ok {
					t.Error("b.example not found")
				}
				if len(f.Elems()) != 3 {
					t.Error("elems")
				}
				if d, _, _ := addr.Attr("domain"); !vsl.Equal(d, vsl.String("doe.com")) {
					t.Error("domain")
				}
			}
		})
	}
	wg.Wait()
}
