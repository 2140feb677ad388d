package service

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/vsl-milter/vsl-milter/vsl"
)

func m(kv ...any) vsl.Value {
	out := make(map[string]vsl.Value)
	for i := 0; i < len(kv); i += 2 {
		switch v := kv[i+1].(type) {
		case string:
			out[kv[i].(string)] = vsl.String(v)
		case []string:
			out[kv[i].(string)] = stringsValue(v)
		case vsl.Value:
			out[kv[i].(string)] = v
		}
	}
	return vsl.NewMap(out)
}

// TestDeclare checks the Go values v1 declarations build.
func TestDeclare(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "t.csv"), []byte("a,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "main.vsl")
	tests := []struct {
		name, typ string
		value     vsl.Value
		want      vsl.HostValue
	}{
		{name: "clamscan", typ: "cmd",
			value: m("command", "/usr/bin/clamscan", "args", []string{"-"}, "timeout", "15s", "user", "clamav", "group", "clamav"),
			want:  &Cmd{Name: "clamscan", Command: "/usr/bin/clamscan", Args: []string{"-"}, Timeout: 15 * time.Second, User: "clamav", Group: "clamav"}},
		{name: "echo", typ: "shell", value: m("command", "echo"),
			want: &Cmd{Name: "echo", Command: "echo", Timeout: DefaultCmdTimeout}},
		{name: "clamsmtpd", typ: "smtp",
			value: m("delegator", m("address", "127.0.0.1:10026", "timeout", "2s"), "receiver", "127.0.0.1:10024"),
			want:  &SMTP{Name: "clamsmtpd", Address: "127.0.0.1:10026", Timeout: 2 * time.Second, Receiver: "127.0.0.1:10024"}},
		{name: "nodefault", typ: "smtp",
			value: m("delegator", m("address", "127.0.0.1:10026"), "receiver", "127.0.0.1:10024"),
			want:  &SMTP{Name: "nodefault", Address: "127.0.0.1:10026", Timeout: DefaultSMTPTimeoutV1, Receiver: "127.0.0.1:10024"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Declare(tt.name, tt.typ, tt.value, script)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.AsHost(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Declare = %#v, want %#v", got, tt.want)
			}
		})
	}

	v, err := Declare("grey", "db:csv", m("connector", "t.csv", "access", "O_RDWR", "refresh", "no", "delimiter", vsl.Char(';')), script)
	if err != nil {
		t.Fatal(err)
	}
	c := v.AsHost().(*CSV)
	if c.Name != "grey" || c.Path != filepath.Join(dir, "t.csv") || c.Access != ReadWrite || c.Refresh != RefreshNo || c.Delimiter != ';' {
		t.Errorf("Declare db:csv = %+v: want the connector resolved against the script's directory", c)
	}
}

func TestDeclareErrors(t *testing.T) {
	tests := []struct {
		typ   string
		value vsl.Value
		want  string
	}{
		{typ: "db:mysql", value: m("url", "mysql://x"), want: "service type db:mysql is not supported by vsl-milter (supported: cmd, smtp, db:csv)"},
		{typ: "db:sqlite", value: m(), want: `unknown service type "db:sqlite" (supported: cmd, smtp, db:csv)`},
		{typ: "cmd", value: vsl.Int(1), want: "cmd: the parameters of a cmd service must be a map #{...}, not i64"},
		{typ: "cmd", value: m("command", "/bin/true", "user", "a", "gruop", "b", "timout", "1s"),
			want: `cmd: unknown keys "gruop", "timout" (expected args, command, group, timeout, user)`},
		{typ: "cmd", value: m("command", ""), want: `cmd: key "command" is empty`},
		{typ: "cmd", value: m("command", "/bin/true", "args", vsl.NewArray([]vsl.Value{vsl.String("a"), vsl.Int(2)})),
			want: `cmd: key "args": element 1 must be a string, not i64`},
		{typ: "smtp", value: m("delegator", m("address", "host:port"), "receiver", "127.0.0.1:1"),
			want: `smtp: key "delegator.address": "host:port" has an invalid port "port" (1 to 65535)`},
		{typ: "db:csv", value: m("connector", "", "access", "O_RDONLY", "refresh", "no", "delimiter", ","),
			want: `db:csv: key "connector" is empty`},
		{typ: "db:csv", value: m("connector", "x.csv", "access", "O_RDONLY", "refresh", "no", "delimiter", vsl.Int(44)),
			want: `db:csv: key "delimiter" must be a single character, not i64`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := Declare("x", tt.typ, tt.value, "/nonexistent/main.vsl")
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Declare = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestServiceStrings(t *testing.T) {
	tests := []struct {
		h        vsl.HostValue
		typeName string
		str      string
	}{
		{h: &Cmd{Name: "clamscan"}, typeName: "cmd", str: "service clamscan (cmd)"},
		{h: &SMTP{Name: "clamsmtpd"}, typeName: "smtp", str: "service clamsmtpd (smtp)"},
		{h: &CSV{Name: "greylist"}, typeName: "db:csv", str: "service greylist (db:csv)"},
	}
	for _, tt := range tests {
		if tt.h.TypeName() != tt.typeName || tt.h.String() != tt.str {
			t.Errorf("%T: TypeName %q String %q, want %q %q", tt.h, tt.h.TypeName(), tt.h.String(), tt.typeName, tt.str)
		}
	}
}

func TestPluginSource(t *testing.T) {
	for _, tt := range []struct {
		path string
		ok   bool
	}{
		{path: "plugins/libvsmtp_plugin_csv", ok: true},
		{path: "/etc/vsmtp/plugins/libvsmtp_plugin_csv.so", ok: true},
		{path: "plugins/libvsmtp_plugin_mysql", ok: false},
		{path: "objects", ok: false},
	} {
		src, ok := PluginSource(tt.path)
		if ok != tt.ok || (ok && !bytes.Contains(src, []byte("csv::file(parameters)"))) {
			t.Errorf("PluginSource(%q) = %q, %v; want ok=%v", tt.path, src, ok, tt.ok)
		}
	}
}

// TestDefineKeepsOtherOverloads checks that the service methods pass calls
// on other receivers to the builtins defined before them.
func TestDefineKeepsOtherOverloads(t *testing.T) {
	env := vsl.NewEnv()
	for _, name := range []string{"run", "get", "set", "rm"} {
		env.Define(&vsl.Builtin{Name: name, Fn: func(c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
			return vsl.String("earlier " + c.Name()), nil
		}})
	}
	Define(env)
	var out bytes.Buffer
	prog, err := vsl.Load("t.vsl", []byte(`print(1.run()); print(1.get(2)); print(1.set(2)); print(1.rm(2));`), env)
	if err != nil {
		t.Fatal(err)
	}
	th := vsl.NewThread(vsl.DefaultLimits())
	th.Out = &out
	if _, err := prog.Run(th); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "earlier run\nearlier get\nearlier set\nearlier rm\n"; got != want {
		t.Errorf("printed %q, want %q", got, want)
	}
}
