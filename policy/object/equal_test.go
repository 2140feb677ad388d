package object

import (
	"context"
	"net/netip"
	"testing"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// mustParse builds an object of type typ or fails the test.
func mustParse(t testing.TB, typ, s string) vsl.Value {
	t.Helper()
	v, err := Parse(typ, s)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", typ, s, err)
	}
	return v
}

// TestEqual checks every row of SEMANTICS §4's comparison table through
// vsl.Equal, the function behind ==, !=, is and not, with the object on
// either side.
func TestEqual(t *testing.T) {
	addr := func(s string) vsl.Value { return mustParse(t, "address", s) }
	fqdn := func(s string) vsl.Value { return mustParse(t, "fqdn", s) }
	ip := func(s string) vsl.Value { return IPValue(netip.MustParseAddr(s)) }
	rg := func(s string) vsl.Value { return RangeValue(netip.MustParsePrefix(s)) }
	re := func(s string) vsl.Value { return mustParse(t, "regex", s) }
	code := func(s string) vsl.Value { return mustParse(t, "code", s) }
	str := vsl.String

	tests := []struct {
		name string
		a, b vsl.Value
		want bool
	}{
		// address vs address or string: same mailbox, local part exact,
		// domain case-insensitive.
		{"address = same address", addr("john@doe.com"), addr("john@doe.com"), true},
		{"address = domain in other case", addr("john@doe.com"), addr("john@DOE.Com"), true},
		{"address ≠ local part in other case", addr("john@doe.com"), addr("John@doe.com"), false},
		{"address ≠ other domain", addr("john@doe.com"), addr("john@doe.org"), false},
		{"address = string", addr("john@doe.com"), str("john@doe.com"), true},
		{"address = string, domain case", addr("john@doe.com"), str("john@Doe.COM"), true},
		{"address = string in brackets", addr("john@doe.com"), str("<john@doe.com>"), true},
		{"address = string, trailing dot", addr("john@doe.com"), str("john@doe.com."), true},
		{"address ≠ string, local case", addr("john@doe.com"), str("JOHN@doe.com"), false},
		{"address ≠ string without @", addr("john@doe.com"), str("john"), false},
		{"address ≠ empty string", addr("john@doe.com"), str(""), false},
		{"address value = string", AddressValue("a", "B.example"), str("a@b.example"), true},
		{"address ≠ fqdn", addr("john@doe.com"), fqdn("doe.com"), false},
		{"address ≠ ident", addr("john@doe.com"), IdentValue("john"), false},

		// fqdn vs fqdn or string: case-insensitive, trailing dot ignored.
		{"fqdn = fqdn", fqdn("doe.com"), fqdn("doe.com"), true},
		{"fqdn = fqdn other case", fqdn("doe.com"), fqdn("DOE.com"), true},
		{"fqdn = fqdn trailing dot", fqdn("doe.com."), fqdn("doe.com"), true},
		{"fqdn = string", fqdn("doe.com"), str("Doe.Com."), true},
		{"fqdn ≠ string", fqdn("doe.com"), str("doe.co"), false},
		{"fqdn ≠ subdomain", fqdn("doe.com"), str("mx.doe.com"), false},
		{"fqdn value = string", FQDNValue("MX.Example"), str("mx.example"), true},
		{"fqdn ≠ int", fqdn("doe.com"), vsl.Int(1), false},

		// ip vs ip or string: the same address.
		{"ip4 = ip4", ip("192.0.2.1"), ip("192.0.2.1"), true},
		{"ip4 ≠ ip4", ip("192.0.2.1"), ip("192.0.2.2"), false},
		{"ip4 = string", ip("192.0.2.1"), str("192.0.2.1"), true},
		{"ip4 = mapped string", ip("192.0.2.1"), str("::ffff:192.0.2.1"), true},
		{"ip4 ≠ non-address string", ip("192.0.2.1"), str("localhost"), false},
		{"ip6 = string, other spelling", ip("2001:db8::1"), str("2001:DB8:0:0:0:0:0:1"), true},
		{"ip6 = ip6", ip("2001:db8::1"), ip("2001:db8::1"), true},
		{"ip6 ≠ ip4", ip("2001:db8::1"), ip("192.0.2.1"), false},
		{"mapped ip6 object = ip4", vsl.Host(&IP{Addr: netip.MustParseAddr("::ffff:192.0.2.1")}), ip("192.0.2.1"), true},
		{"ip zone ignored", ip("fe80::1%eth0"), str("fe80::1"), true},

		// ranges compare as ranges.
		{"rg4 = rg4", rg("10.0.0.0/8"), rg("10.0.0.0/8"), true},
		{"rg4 = string", rg("10.0.0.0/8"), str("10.0.0.0/8"), true},
		{"rg4 = string with host bits", rg("10.0.0.0/8"), str("10.1.2.3/8"), true},
		{"rg4 ≠ other length", rg("10.0.0.0/8"), str("10.0.0.0/16"), false},
		{"rg4 ≠ ip", rg("10.0.0.0/8"), ip("10.0.0.1"), false},

		// regex vs string: matches anywhere unless anchored.
		{"regex matches inside", re(`doe\.com`), str("john@doe.com"), true},
		{"regex anchored no match", re(`^doe\.com$`), str("john@doe.com"), false},
		{"regex anchored match", re(`^john@`), str("john@doe.com"), true},
		{"regex vs address", re(`@doe\.com$`), addr("john@doe.com"), true},
		{"regex vs fqdn", re(`^mx\.`), fqdn("mx.doe.com"), true},
		{"regex vs ip", re(`^192\.0\.2\.`), ip("192.0.2.7"), true},
		{"regex vs ident", re(`^jo`), IdentValue("john"), true},
		{"regex vs regex same pattern", re(`a+`), re(`a+`), true},
		{"regex vs regex other pattern", re(`a+`), re(`b+`), false},
		{"regex ≠ int", re(`1`), vsl.Int(1), false},

		// identifier/string vs string: exact.
		{"ident = string", IdentValue("null"), str("null"), true},
		{"ident ≠ string other case", IdentValue("null"), str("NULL"), false},
		{"ident = ident", IdentValue("john"), IdentValue("john"), true},
		{"ident ≠ ident", IdentValue("john"), IdentValue("jane"), false},
		{"string object = string", mustParse(t, "string", "doe/virus"), str("doe/virus"), true},

		// codes.
		{"code = code", code("550 5.7.1 no"), code("550 5.7.1 no"), true},
		{"code = string", code("550 5.7.1 no"), str("550 5.7.1 no"), true},
		{"code ≠ other text", code("550 5.7.1 no"), str("550 5.7.1 yes"), false},
		{"code ≠ garbage", code("550 5.7.1 no"), str("nope"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := vsl.Equal(tt.a, tt.b); got != tt.want {
				t.Errorf("%s == %s: got %v, want %v", vsl.Debug(tt.a), vsl.Debug(tt.b), got, tt.want)
			}
			if got := vsl.Equal(tt.b, tt.a); got != tt.want {
				t.Errorf("%s == %s: got %v, want %v", vsl.Debug(tt.b), vsl.Debug(tt.a), got, tt.want)
			}
		})
	}
}

// TestEqualNoAlloc checks that the common comparisons of an object with a
// string do not allocate.
func TestEqualNoAlloc(t *testing.T) {
	tests := []struct {
		name string
		obj  vsl.Value
		s    string
	}{
		{"address", AddressValue("john", "doe.com"), "john@DOE.com"},
		{"fqdn", FQDNValue("doe.com"), "DOE.COM."},
		{"ip4", IPValue(netip.MustParseAddr("192.0.2.1")), "192.0.2.1"},
		{"ip6", IPValue(netip.MustParseAddr("2001:db8::1")), "2001:db8::1"},
		{"ident", IdentValue("null"), "null"},
		{"regex", mustParse(t, "regex", `doe\.com$`), "john@doe.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := vsl.String(tt.s)
			if !vsl.Equal(tt.obj, s) {
				t.Fatalf("%s != %q", vsl.Debug(tt.obj), tt.s)
			}
			if n := testing.AllocsPerRun(100, func() { vsl.Equal(tt.obj, s) }); n != 0 {
				t.Errorf("%s == %q: %v allocations", vsl.Debug(tt.obj), tt.s, n)
			}
		})
	}
}

// TestArrayAsGroup checks that a plain array used as a v2 group goes
// through the runtime's own `in`, which compares elements with the
// objects' rules.
func TestArrayAsGroup(t *testing.T) {
	group := vsl.NewArray([]vsl.Value{
		AddressValue("john", "doe.com"),
		vsl.String("jane@doe.com"),
		FQDNValue("example.org"),
		IPValue(netip.MustParseAddr("192.0.2.1")),
	})
	tests := []struct {
		x    vsl.Value
		want bool
	}{
		{vsl.String("john@DOE.com"), true},      // by the address's rules
		{AddressValue("john", "doe.COM"), true}, // address = address
		{vsl.String("jane@doe.com"), true},      // string = string
		{vsl.String("jane@DOE.com"), false},     // string = string is exact
		{AddressValue("jane", "DOE.com"), true}, // address = string element
		{vsl.String("EXAMPLE.org."), true},      // by the fqdn's rules
		{vsl.String("::ffff:192.0.2.1"), true},  // by the ip's rules
		{IPValue(netip.MustParseAddr("192.0.2.2")), false},
	}
	prog, err := vsl.Load("in.vsl", []byte("|x, list| x in list"), vsl.NewEnv())
	if err != nil {
		t.Fatal(err)
	}
	th := vsl.NewThread(vsl.DefaultLimits())
	fn, err := prog.Run(th)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		th.Reset(context.Background())
		got, err := prog.Call(th, fn, tt.x, group)
		if err != nil {
			t.Fatalf("%s in %s: %v", vsl.Debug(tt.x), vsl.Debug(group), err)
		}
		if got.AsBool() != tt.want {
			t.Errorf("%s in %s: got %s, want %v", vsl.Debug(tt.x), vsl.Debug(group), vsl.Debug(got), tt.want)
		}
	}
}
