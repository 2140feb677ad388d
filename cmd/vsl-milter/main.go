// Command vsl-milter runs vSL, the rule language of the vSMTP mail server,
// against mail. This file holds only flags and wiring; the work happens in
// the packages it calls.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `vsl-milter — run vSMTP's vSL rules against mail

Usage:
  vsl-milter serve [-c CONFIG]                  run the milter (default: embedded config, inet:127.0.0.1:10030)
  vsl-milter check [-c CONFIG]                  load the configuration and rules, print errors and warnings
  vsl-milter test [-c CONFIG] [--json] [--mode milter|smtp] SESSION
                                                dry-run one SMTP session through the rules
  vsl-milter script FILE [--max-operations N]   run a plain vSL script
  vsl-milter version                            print the version

Run "vsl-milter COMMAND -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "script":
		return cmdScript(args[1:], stdout, stderr)
	case "serve":
		return cmdServe(args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "test":
		return cmdTest(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "vsl-milter %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "vsl-milter: unknown command %q\n\n%s", args[0], usage)
	return 2
}
