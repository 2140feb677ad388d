package object

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/vsl"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in            string
		local, domain string
		err           string // substring of the error; "" for success
	}{
		{in: "john@doe.com", local: "john", domain: "doe.com"},
		{in: "<john@doe.com>", local: "john", domain: "doe.com"},
		{in: "  john.doe+tag@Mail.Doe.COM ", local: "john.doe+tag", domain: "Mail.Doe.COM"},
		{in: `"john doe"@doe.com`, local: `"john doe"`, domain: "doe.com"},
		{in: `"a@b"@doe.com`, local: `"a@b"`, domain: "doe.com"},
		{in: "root@localhost", local: "root", domain: "localhost"},
		{in: "postmaster@[192.0.2.1]", local: "postmaster", domain: "[192.0.2.1]"},
		{in: "postmaster@[IPv6:2001:db8::1]", local: "postmaster", domain: "[IPv6:2001:db8::1]"},
		{in: "jöhn@exämple.de", local: "jöhn", domain: "exämple.de"},
		{in: "", err: "empty address"},
		{in: "<>", err: "null sender"},
		{in: "john", err: "missing '@'"},
		{in: "@doe.com", err: "empty local part"},
		{in: "john@", err: "empty domain"},
		{in: "<john@doe.com", err: "unbalanced angle brackets"},
		{in: ".john@doe.com", err: "leading or trailing '.'"},
		{in: "jo..hn@doe.com", err: "consecutive dots"},
		{in: "jo hn@doe.com", err: `character ' ' not allowed`},
		{in: `"jo"hn"@doe.com`, err: "unescaped"},
		{in: "john@doe..com", err: "empty label"},
		{in: "john@-doe.com", err: "starts or ends with '-'"},
		{in: "john@doe!.com", err: `character '!' not allowed in a domain name`},
		{in: "john@[300.1.1.1]", err: "not an IPv4 address literal"},
		{in: "john@[192.0.2.1", err: "without ']'"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, err := ParseAddress(tt.in)
			if tt.err != "" {
				if err == nil {
					t.Fatalf("ParseAddress(%q) = %v, want an error containing %q", tt.in, a, tt.err)
				}
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Type != "address" || pe.Value != tt.in {
					t.Errorf("error %v (%T) is not a ParseError naming the address", err, err)
				}
				if !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "invalid address ") {
					t.Errorf("ParseAddress(%q) error %q, want it to contain %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAddress(%q): %v", tt.in, err)
			}
			if a.Local != tt.local || a.Domain != tt.domain {
				t.Errorf("ParseAddress(%q) = %q, %q; want %q, %q", tt.in, a.Local, a.Domain, tt.local, tt.domain)
			}
			if got, want := a.String(), tt.local+"@"+tt.domain; got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
			if a.TypeName() != "address" {
				t.Errorf("TypeName() = %q", a.TypeName())
			}
		})
	}
}

func TestAddressAttrAndContains(t *testing.T) {
	a := AddressValue("john", "Doe.com")
	h := a.AsHost().(*Address)
	lp, ok, err := h.Attr("local_part")
	if !ok || err != nil || lp.AsString() != "john" {
		t.Errorf("local_part = %s, %v, %v", vsl.Debug(lp), ok, err)
	}
	dom, ok, err := h.Attr("domain")
	if !ok || err != nil || dom.TypeName() != "fqdn" || vsl.ToString(dom) != "Doe.com" || !vsl.Equal(dom, vsl.String("doe.com")) {
		t.Errorf("domain = %s (%s), %v, %v", vsl.Debug(dom), dom.TypeName(), ok, err)
	}
	if n := testing.AllocsPerRun(100, func() { h.Attr("domain") }); n != 0 {
		t.Errorf("domain: %v allocations", n)
	}
	if _, ok, _ := h.Attr("nope"); ok {
		t.Error("Attr(nope) found")
	}
	// An address built as a Go literal still has its domain.
	lit := &Address{Local: "a", Domain: "b.example"}
	if dom, ok, _ := lit.Attr("domain"); !ok || vsl.ToString(dom) != "b.example" {
		t.Errorf("literal domain = %s", vsl.Debug(dom))
	}

	tests := []struct {
		x    vsl.Value
		want bool
		err  string
	}{
		{x: IdentValue("john"), want: true},
		{x: IdentValue("jane"), want: false},
		{x: vsl.String("john"), want: true},
		{x: vsl.String("John"), want: false},
		{x: FQDNValue("doe.COM"), want: true},
		{x: FQDNValue("doe.org"), want: false},
		{x: vsl.Int(1), err: "cannot look for a i64 in an address"},
	}
	for _, tt := range tests {
		got, err := h.Contains(tt.x)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s in address: error %v, want %q", vsl.Debug(tt.x), err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s in %s = %v, %v; want %v", vsl.Debug(tt.x), h, got, err, tt.want)
		}
	}
}

func TestParseFQDN(t *testing.T) {
	tests := []struct {
		in  string
		err string
	}{
		{in: "doe.com"},
		{in: "doe.com."},
		{in: "_dmarc.doe.com"},
		{in: "xn--exmple-cua.de"},
		{in: "localhost"},
		{in: "", err: "empty domain name"},
		{in: ".", err: "empty domain name"},
		{in: "a..b", err: "empty label"},
		{in: ".doe.com", err: "empty label"},
		{in: "doe-.com", err: "starts or ends with '-'"},
		{in: strings.Repeat("a", 64) + ".com", err: "longer than 63 bytes"},
		{in: strings.Repeat("abcdefg.", 32) + "com", err: "longer than 253 bytes"},
		{in: "not a domain", err: `character ' ' not allowed`},
		{in: "doe.com/x", err: `character '/' not allowed`},
	}
	for _, tt := range tests {
		f, err := ParseFQDN(tt.in)
		if tt.err == "" {
			if err != nil || f.Name != tt.in || f.String() != tt.in || f.TypeName() != "fqdn" {
				t.Errorf("ParseFQDN(%q) = %v, %v", tt.in, f, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "invalid fqdn ") {
			t.Errorf("ParseFQDN(%q) error %v, want %q", tt.in, err, tt.err)
		}
	}
}

func TestParseIPAndRange(t *testing.T) {
	tests := []struct {
		typ, in  string
		typeName string // type_of of the result
		str      string // its text
		err      string
	}{
		{typ: "ip4", in: "192.0.2.1", typeName: "ip4", str: "192.0.2.1"},
		{typ: "ip4", in: " 192.0.2.1 ", typeName: "ip4", str: "192.0.2.1"},
		{typ: "ip4", in: "300.1.1.1", err: `invalid ip4 "300.1.1.1": IPv4 field has value >255`},
		{typ: "ip4", in: "2001:db8::1", err: "not an IPv4 address"},
		{typ: "ip4", in: "doe.com", err: `invalid ip4 "doe.com"`},
		{typ: "ip6", in: "2001:DB8::1", typeName: "ip6", str: "2001:db8::1"},
		{typ: "ip6", in: "::ffff:192.0.2.1", typeName: "ip6", str: "::ffff:192.0.2.1"},
		{typ: "ip6", in: "192.0.2.1", err: "not an IPv6 address"},
		{typ: "ip6", in: "2001:db8::g", err: `invalid ip6 "2001:db8::g"`},
		{typ: "rg4", in: "10.0.0.0/8", typeName: "rg4", str: "10.0.0.0/8"},
		{typ: "rg4", in: "10.1.2.3/8", typeName: "rg4", str: "10.0.0.0/8"},
		{typ: "rg4", in: "192.0.2.7", typeName: "rg4", str: "192.0.2.7/32"},
		{typ: "rg4", in: "10.0.0.0/33", err: `invalid rg4 "10.0.0.0/33"`},
		{typ: "rg4", in: "2001:db8::/32", err: "not an IPv4 range"},
		{typ: "rg4", in: "10.0.0.0/x", err: `invalid rg4`},
		{typ: "rg6", in: "2001:db8::/32", typeName: "rg6", str: "2001:db8::/32"},
		{typ: "rg6", in: "10.0.0.0/8", err: "not an IPv6 range"},
		{typ: "rg6", in: "fe80::1%eth0", err: "no zone"},
	}
	for _, tt := range tests {
		v, err := Parse(tt.typ, tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%s, %q) error %v, want %q", tt.typ, tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%s, %q): %v", tt.typ, tt.in, err)
			continue
		}
		if v.TypeName() != tt.typeName || vsl.ToString(v) != tt.str {
			t.Errorf("Parse(%s, %q) = %s (%s), want %s (%s)", tt.typ, tt.in, vsl.ToString(v), v.TypeName(), tt.str, tt.typeName)
		}
	}
	// IPValue unmaps IPv4-mapped addresses: a client reported as
	// ::ffff:192.0.2.1 is an ip4.
	if v := IPValue(netip.MustParseAddr("::ffff:192.0.2.1")); v.TypeName() != "ip4" || vsl.ToString(v) != "192.0.2.1" {
		t.Errorf("IPValue(mapped) = %s (%s)", vsl.ToString(v), v.TypeName())
	}
}

func TestRangeContains(t *testing.T) {
	rg := func(s string) *Range { return mustParse(t, "rg4", s).AsHost().(*Range) }
	rg6 := func(s string) *Range { return mustParse(t, "rg6", s).AsHost().(*Range) }
	ip := func(s string) vsl.Value { return IPValue(netip.MustParseAddr(s)) }
	tests := []struct {
		r    *Range
		x    vsl.Value
		want bool
		err  string
	}{
		{r: rg("10.0.0.0/8"), x: ip("10.1.2.3"), want: true},
		{r: rg("10.0.0.0/8"), x: ip("11.0.0.1"), want: false},
		{r: rg("10.0.0.0/8"), x: vsl.String("10.255.255.255"), want: true},
		{r: rg("10.0.0.0/8"), x: vsl.String("::ffff:10.0.0.1"), want: true},
		{r: rg("10.0.0.0/8"), x: vsl.String("10.2.0.0/16"), want: true},
		{r: rg("10.0.0.0/8"), x: vsl.String("10.0.0.0/7"), want: false},
		{r: rg("10.0.0.0/8"), x: mustParse(t, "rg4", "10.3.0.0/16"), want: true},
		{r: rg("10.0.0.0/8"), x: vsl.String("not an ip"), want: false},
		{r: rg("10.0.0.0/8"), x: ip("2001:db8::1"), want: false},
		{r: rg("0.0.0.0/0"), x: ip("203.0.113.9"), want: true},
		{r: rg6("2001:db8::/32"), x: ip("2001:db8:1::5"), want: true},
		{r: rg6("2001:db8::/32"), x: ip("2001:db9::5"), want: false},
		{r: rg6("::ffff:0:0/96"), x: ip("192.0.2.1"), want: true},
		{r: rg6("::ffff:0:0/96"), x: mustParse(t, "rg4", "192.0.2.0/24"), want: true},
		{r: rg("10.0.0.0/8"), x: FQDNValue("doe.com"), err: "cannot look for a fqdn in a rg4"},
	}
	for _, tt := range tests {
		got, err := tt.r.Contains(tt.x)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s in %s: error %v, want %q", vsl.Debug(tt.x), tt.r, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s in %s = %v, %v; want %v", vsl.Debug(tt.x), tt.r, got, err, tt.want)
		}
	}
}

func TestParseRegex(t *testing.T) {
	r, err := ParseRegex(`^[a-z]+@doe\.com$`)
	if err != nil {
		t.Fatal(err)
	}
	if r.TypeName() != "regex" || r.String() != `^[a-z]+@doe\.com$` {
		t.Errorf("regex = %s (%s)", r, r.TypeName())
	}
	for x, want := range map[string]bool{"john@doe.com": true, "john@doe.com.evil": false, "John@doe.com": false} {
		if got, err := r.Contains(vsl.String(x)); err != nil || got != want {
			t.Errorf("%q in %s = %v, %v; want %v", x, r, got, err, want)
		}
	}
	if _, err := r.Contains(vsl.Int(3)); err == nil || !strings.Contains(err.Error(), "cannot match a regex against a i64") {
		t.Errorf("3 in regex: error %v", err)
	}
	_, err = ParseRegex(`(`)
	if err == nil || err.Error() != "invalid regex \"(\": missing closing ): `(`" {
		t.Errorf("ParseRegex(`(`) error %v", err)
	}
}

func TestIdent(t *testing.T) {
	v := IdentValue("null")
	if v.TypeName() != "ident" || vsl.ToString(v) != "null" {
		t.Errorf("IdentValue = %s (%s)", vsl.ToString(v), v.TypeName())
	}
	id, err := Parse("identifier", "john")
	if err != nil || id.TypeName() != "ident" || !vsl.Equal(id, vsl.String("john")) {
		t.Errorf("Parse(identifier) = %s, %v", vsl.Debug(id), err)
	}
	if s, err := Parse("string", "doe/virus"); err != nil || s.Kind() != vsl.KindString || s.AsString() != "doe/virus" {
		t.Errorf("Parse(string) = %s, %v", vsl.Debug(s), err)
	}
	if _, err := Parse("color", "red"); err == nil || !strings.Contains(err.Error(), `unknown object type "color"`) {
		t.Errorf("Parse(color) error %v", err)
	}
}
