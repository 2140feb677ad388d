package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/vsl-milter/vsl-milter/milter"
)

// cmdCheck loads the configuration and the rules and prints every error and
// warning with its position: exit 1 on errors, 0 otherwise.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "the configuration file (vsmtp.toml); default: the embedded default")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: vsl-milter check [-c CONFIG]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	rules, err := loadRules(cfg)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	if w := rules.WarningsDetailed(); w != "" {
		fmt.Fprintln(stderr, w)
	}
	n := len(rules.Names())
	src := cfg.RulesPath()
	if src == "" {
		src = "the embedded default rules"
	}
	fmt.Fprintf(stdout, "%s: ok, %d directive(s), %d warning(s)\n", src, n, len(rules.Warnings))
	fmt.Fprintf(stdout, "milter: %s\n", milter.Describe(rules))
	return 0
}
