package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/policy"
)

// TestLoadErrors pins the errors of rule files that do not load: each
// names the file, line and column of the problem.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown stage", `#{ conect: [] }`,
			`rules.vsl:1:4: unknown stage "conect"; the stages are connect, helo, authenticate, mail, rcpt, preq, postq, delivery (and "deliver" for delivery)`},
		{"stage not an array", `#{ mail: rule "x" || next() }`,
			`rules.vsl:1:4: stage "mail" must be an array of directives, not rule`},
		{"not a directive", `#{ mail: [ rule "a" || next(), 42 ] }`,
			`rules.vsl:1:32: element 2 of stage "mail" is a i64, not a rule, action or delegate directive`},
		{"duplicate name", "#{\n  mail: [ rule \"a\" || next() ],\n  rcpt: [ rule \"a\" || next() ],\n}",
			`rules.vsl:3:11: directive name "a" is used twice (first at rules.vsl:2:11)`},
		{"deliver and delivery", `#{ deliver: [], delivery: [] }`,
			`rules.vsl:1:17: stage "delivery" is given twice (also as "deliver")`},
		{"no stage map", `let x = 1;`,
			`rules.vsl:1:1: the rules file must end with the stage map #{ connect: [...], mail: [...], ... }, but its last statement has no value (a trailing ';'?)`},
		{"body map without evaluate", `#{ mail: [ rule "a" #{ eval: || next() } ] }`,
			`rules.vsl:1:12: rule "a": the body map of rule "a" needs an 'evaluate' closure`},
		{"bad object", `object x ip4 = "300.1.1.1"; #{}`,
			`rules.vsl:1:1: object 'x': invalid ip4 "300.1.1.1"`},
		{"undefined function", `#{ mail: [ rule "a" || nxt() ] }`,
			`rules.vsl:1:24: function not found: nxt`},
		{"delegate at mail", "service av smtp = #{ delegator: #{ address: \"127.0.0.1:10026\", timeout: \"5s\" }, receiver: \"127.0.0.1:10025\" };\n#{ mail: [ delegate av \"scan\" || next() ] }",
			`rules.vsl:2:12: delegate "scan" is only allowed in the postq and delivery stages, not mail`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.Load("rules.vsl", []byte(tt.src), policy.Options{})
			if err == nil {
				t.Fatalf("loaded without error, want %s", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error:\n%s\nwant prefix:\n%s", err, tt.want)
			}
		})
	}
}

// TestImports checks that imports resolve relative to the importing file
// and that cycles are an error naming the chain.
func TestImports(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.vsl", `import "lib/objects" as o; #{ mail: [ rule "a" || if mail_from() is o::boss { accept() } else { next() } ] }`)
	write("lib/objects.vsl", `import "domains" as d; object boss address = "boss@example.org"; export const x = d::y;`)
	write("lib/domains.vsl", `export const y = 1;`)
	if _, err := policy.LoadFile(filepath.Join(dir, "main.vsl"), policy.Options{}); err != nil {
		t.Fatalf("nested relative imports: %v", err)
	}
	write("a.vsl", `import "b" as b; #{}`)
	write("b.vsl", `import "a" as a; export const z = 1;`)
	_, err := policy.LoadFile(filepath.Join(dir, "a.vsl"), policy.Options{})
	if err == nil || !strings.Contains(err.Error(), "import cycle") {
		t.Fatalf("import cycle: got %v", err)
	}
}
