package object

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/vsl"
)

func TestDeclare(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "rules", "objects.vsl")
	writeFile(t, dir, "top.txt", "top.example\n")
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "rules"), "blacklist.txt", "spam.example\n")
	abs := writeFile(t, dir, "abs.txt", "192.0.2.0/24\n")

	str := vsl.String
	valueMap := func(v vsl.Value) vsl.Value { return vsl.NewMap(map[string]vsl.Value{"value": v}) }
	tests := []struct {
		typ      string
		v        vsl.Value
		typeName string // type_of of the result
		text     string // vsl.ToString of the result
		err      string
	}{
		{typ: "ip4", v: str("192.168.1.254"), typeName: "ip4", text: "192.168.1.254"},
		{typ: "ip6", v: str("::1"), typeName: "ip6", text: "::1"},
		{typ: "rg4", v: str("192.168.0.0/16"), typeName: "rg4", text: "192.168.0.0/16"},
		{typ: "rg6", v: str("2001:db8::/32"), typeName: "rg6", text: "2001:db8::/32"},
		{typ: "fqdn", v: str("doe.family"), typeName: "fqdn", text: "doe.family"},
		{typ: "address", v: str("john@doe.family"), typeName: "address", text: "john@doe.family"},
		{typ: "ident", v: str("john"), typeName: "ident", text: "john"},
		{typ: "identifier", v: str("john"), typeName: "ident", text: "john"},
		{typ: "string", v: str("doe/bad_user"), typeName: "string", text: "doe/bad_user"},
		{typ: "regex", v: str(`^[a-z0-9.]+@doe\.family$`), typeName: "regex", text: `^[a-z0-9.]+@doe\.family$`},
		{typ: "code", v: str("451 4.7.1 try later"), typeName: "code", text: "451 4.7.1 try later"},
		{typ: "code", v: vsl.NewMap(map[string]vsl.Value{"code": vsl.Int(550), "enhanced": str("5.7.1"), "text": str("no")}), typeName: "code", text: "550 5.7.1 no"},
		{typ: "fqdn", v: valueMap(str("map.example")), typeName: "fqdn", text: "map.example"},
		{typ: "address", v: AddressValue("a", "b.example"), typeName: "address", text: "a@b.example"},
		{typ: "identifier", v: IdentValue("x"), typeName: "ident", text: "x"},
		{typ: "group", v: vsl.NewArray([]vsl.Value{AddressValue("a", "b.example"), str("c")}), typeName: "group", text: `[a@b.example, "c"]`},
		{typ: "group", v: valueMap(vsl.NewArray(nil)), typeName: "group", text: "[]"},
		{typ: "file:fqdn", v: str("blacklist.txt"), typeName: "file", text: "[spam.example]"},
		{typ: "file:fqdn", v: str("../top.txt"), typeName: "file", text: "[top.example]"},
		{typ: "file:rg4", v: str(abs), typeName: "file", text: "[192.0.2.0/24]"},
		{typ: "file:fqdn", v: valueMap(str("blacklist.txt")), typeName: "file", text: "[spam.example]"},

		{typ: "ip4", v: str("300.1.1.1"), err: `invalid ip4 "300.1.1.1": IPv4 field has value >255`},
		{typ: "ip4", v: str("::1"), err: `invalid ip4 "::1": not an IPv4 address`},
		{typ: "rg4", v: str("10.0.0.0/40"), err: `invalid rg4 "10.0.0.0/40"`},
		{typ: "fqdn", v: str("bad domain"), err: `invalid fqdn "bad domain"`},
		{typ: "address", v: str("john"), err: `invalid address "john": missing '@'`},
		{typ: "regex", v: str("("), err: `invalid regex "("`},
		{typ: "code", v: str("hello"), err: `invalid code "hello"`},
		{typ: "code", v: vsl.NewMap(map[string]vsl.Value{"text": str("no")}), err: "invalid code: code map: missing 'code'"},
		{typ: "ip4", v: vsl.Int(1), err: "invalid ip4: expected a string, got i64"},
		{typ: "fqdn", v: vsl.NewMap(nil), err: "invalid fqdn: a map value needs a string under 'value'"},
		{typ: "ip4", v: FQDNValue("doe.com"), err: "invalid ip4: expected a string, got fqdn"},
		{typ: "group", v: str("john"), err: "invalid group: expected an array of objects, got string"},
		{typ: "group", v: vsl.NewArray([]vsl.Value{vsl.NewMap(nil)}), err: "invalid group: element 0 is a map"},
		{typ: "file", v: str("x.txt"), err: "a file object needs the type of its values: file:TYPE"},
		{typ: "file:fqdn", v: str("missing.txt"), err: "file:fqdn list " + filepath.Join(dir, "rules", "missing.txt") + ": no such file or directory"},
		{typ: "file:color", v: str("blacklist.txt"), err: `unknown file content type "color"`},
		{typ: "file:fqdn", v: vsl.Int(3), err: "invalid file:fqdn: expected a string, got i64"},
		{typ: "color", v: str("red"), err: `unknown object type "color"`},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"="+vsl.Debug(tt.v), func(t *testing.T) {
			v, err := Declare(tt.typ, tt.v, script)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("Declare(%s, %s) error %v, want %q", tt.typ, vsl.Debug(tt.v), err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Declare(%s, %s): %v", tt.typ, vsl.Debug(tt.v), err)
			}
			if v.TypeName() != tt.typeName || vsl.ToString(v) != tt.text {
				t.Errorf("Declare(%s, %s) = %s (%s), want %s (%s)", tt.typ, vsl.Debug(tt.v), vsl.ToString(v), v.TypeName(), tt.text, tt.typeName)
			}
		})
	}
}
