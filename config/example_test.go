package config_test

import (
	"fmt"

	"github.com/vsl-milter/vsl-milter/config"
)

func ExampleParseListen() {
	for _, s := range []string{"unix:/run/vsl-milter/milter.sock", "inet:127.0.0.1:10030", "inet:10030@localhost"} {
		network, address, err := config.ParseListen(s)
		fmt.Println(network, address, err)
	}
	// Output:
	// unix /run/vsl-milter/milter.sock <nil>
	// tcp 127.0.0.1:10030 <nil>
	// tcp localhost:10030 <nil>
}

func ExampleParse() {
	c, err := config.Parse("/etc/vsmtp/vsmtp.toml", []byte(`
version_requirement = ">=1.0.0"

[app.vsl]
filepath = "rules/main.vsl"

[milter]
listen = "unix:/run/vsl-milter/milter.sock"
on_error = "deny"
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Milter.Listen, c.Milter.OnError, c.Milter.StageDeadline)
	fmt.Println(c.RulesPath())
	// Output:
	// unix:/run/vsl-milter/milter.sock deny 10s
	// /etc/vsmtp/rules/main.vsl
}

func ExampleErrors() {
	_, err := config.Parse("vsmtp.toml", []byte(`
[milter]
on_error = "maybe"
stage_deadline = "45s"
`))
	fmt.Println(err)
	// Output:
	// vsmtp.toml:3:1: milter.on_error: invalid value "maybe": expected one of "tempfail", "deny", "accept"
	// vsmtp.toml:4:1: milter.stage_deadline: invalid value "45s": expected more than 0s and less than 30s (Postfix's default milter_command_timeout)
}
