package object

import (
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/vsl"
)

func TestParseCode(t *testing.T) {
	tests := []struct {
		in   string
		want Code
		str  string
		err  string
	}{
		{in: "451 4.7.1 try later", want: Code{451, "4.7.1", "try later"}, str: "451 4.7.1 try later"},
		{in: "554 text", want: Code{554, "", "text"}, str: "554 text"},
		{in: "250", want: Code{250, "", ""}, str: "250"},
		{in: "550 5.7.1", want: Code{550, "5.7.1", ""}, str: "550 5.7.1"},
		{in: "550 5.7.20 No passing DKIM signature found\r\n", want: Code{550, "5.7.20", "No passing DKIM signature found"}, str: "550 5.7.20 No passing DKIM signature found"},
		{in: "550  5.1.1  spaced", want: Code{550, "5.1.1", "spaced"}, str: "550 5.1.1 spaced"},
		{in: "550 1.5 is not enhanced", want: Code{550, "", "1.5 is not enhanced"}, str: "550 1.5 is not enhanced"},
		{in: "", err: "three-digit reply code"},
		{in: "55", err: "three-digit reply code"},
		{in: "abc text", err: "three-digit reply code"},
		{in: "+50 text", err: "three-digit reply code"},
		{in: "5500 text", err: "expected a space after the reply code 550"},
		{in: "150 text", err: "not between 200 and 599"},
		{in: "650 text", err: "not between 200 and 599"},
		{in: "550 3.7.1 text", err: "class 2, 4 or 5"},
		{in: "550 5.7.1234 text", err: "1 to 3 digits"},
		{in: "550 5.7.1 two\nlines", err: "single line"},
	}
	for _, tt := range tests {
		c, err := ParseCode(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "invalid code ") {
				t.Errorf("ParseCode(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCode(%q): %v", tt.in, err)
			continue
		}
		if *c != tt.want || c.String() != tt.str {
			t.Errorf("ParseCode(%q) = %+v %q, want %+v %q", tt.in, *c, c.String(), tt.want, tt.str)
		}
	}
}

func TestToCode(t *testing.T) {
	m := func(kv ...any) vsl.Value {
		out := map[string]vsl.Value{}
		for i := 0; i < len(kv); i += 2 {
			switch v := kv[i+1].(type) {
			case int:
				out[kv[i].(string)] = vsl.Int(int64(v))
			case string:
				out[kv[i].(string)] = vsl.String(v)
			}
		}
		return vsl.NewMap(out)
	}
	obj := vsl.Host(&Code{Code: 421, Text: "bye"})
	tests := []struct {
		name string
		in   vsl.Value
		want Code
		err  string
	}{
		{name: "object", in: obj, want: Code{421, "", "bye"}},
		{name: "string", in: vsl.String("451 4.7.1 try later"), want: Code{451, "4.7.1", "try later"}},
		{name: "map", in: m("code", 550, "enhanced", "5.7.1", "text", "no"), want: Code{550, "5.7.1", "no"}},
		{name: "map without enhanced", in: m("code", 554, "text", "go away"), want: Code{554, "", "go away"}},
		{name: "map value", in: m("value", "550 5.7.1 no"), want: Code{550, "5.7.1", "no"}},
		{name: "map without code", in: m("text", "no"), err: "missing 'code'"},
		{name: "map code as string", in: m("code", "550"), err: "'code' must be an integer, got string"},
		{name: "map text as int", in: m("code", 550, "text", 1), err: "'text' must be a string, got i64"},
		{name: "map unknown key", in: m("code", 550, "txt", "no"), err: "unknown key 'txt'"},
		{name: "map bad code", in: m("code", 700, "text", "no"), err: "not between 200 and 599"},
		{name: "bad string", in: vsl.String("hello"), err: `invalid code "hello"`},
		{name: "int", in: vsl.Int(550), err: "expected a code (a code object, a string such as \"550 5.7.1 text\" or a map #{code, enhanced, text}), got i64"},
	}
	for _, tt := range tests {
		c, err := ToCode(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: ToCode(%s) error %v, want %q", tt.name, vsl.Debug(tt.in), err, tt.err)
			}
			continue
		}
		if err != nil || *c != tt.want {
			t.Errorf("%s: ToCode(%s) = %v, %v; want %+v", tt.name, vsl.Debug(tt.in), c, err, tt.want)
		}
	}
}

func TestCodeAttr(t *testing.T) {
	c := &Code{Code: 550, Enhanced: "5.7.1", Text: "no"}
	want := map[string]vsl.Value{"code": vsl.Int(550), "enhanced": vsl.String("5.7.1"), "text": vsl.String("no")}
	for name, w := range want {
		v, ok, err := c.Attr(name)
		if !ok || err != nil || !vsl.Equal(v, w) {
			t.Errorf("%s = %s, %v, %v", name, vsl.Debug(v), ok, err)
		}
	}
	if _, ok, _ := c.Attr("status"); ok {
		t.Error("Attr(status) found")
	}
}

func TestPredefined(t *testing.T) {
	tests := []struct{ name, want string }{
		{"code554_7_1", "554 5.7.1 Relay access denied"},
		{"c554_7_1", "554 5.7.1 Relay access denied"},
		{"c451_7_1", "451 4.7.1 Sender is not authorized. Please try again."},
		{"code_greylist", "451 4.7.1 Sender is not authorized. Please try again."},
		{"code550_7_20", "550 5.7.20 No passing DKIM signature found"},
		{"c550_7_21", "550 5.7.21 No acceptable DKIM signature found"},
		{"c550_7_22", "550 5.7.22 No valid author-matched DKIM signature found"},
		{"c550_7_23", "550 5.7.23 SPF validation failed"},
		{"c550_7_24", "550 5.7.24 SPF validation error"},
		{"c550_7_25", "550 5.7.25 Reverse DNS validation failed"},
		{"c500_7_26", "500 5.7.26 Multiple authentication checks failed"},
		{"code550_7_26", "500 5.7.26 Multiple authentication checks failed"},
		{"c550_7_27", "550 5.7.27 Sender address has null MX"},
		{"code451_7_24", "451 4.7.24 SPF validation error"},
		{"c556_1_10", "556 5.1.10 Recipient address has null MX"},
		{"c451_3_0", "451 4.3.0 Multiple destination domains per transaction is unsupported. Please try again."},
		{"c550_1_1", "550 5.1.1 The email account that you tried to reach does not exist. Please try again."},
	}
	for _, tt := range tests {
		c, ok := Predefined(tt.name)
		if !ok || c.String() != tt.want {
			t.Errorf("Predefined(%s) = %v, %v; want %q", tt.name, c, ok, tt.want)
		}
		if ok {
			if err := c.check(); err != nil {
				t.Errorf("Predefined(%s) is not a valid code: %v", tt.name, err)
			}
		}
	}
	if _, ok := Predefined("c999_9_9"); ok {
		t.Error("Predefined(c999_9_9) found")
	}
}
