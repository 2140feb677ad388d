package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/vsl-milter/vsl-milter/policy/dryrun"
)

// cmdTest dry-runs one SMTP session file through the rules without sending
// or storing any mail, and prints what would happen.
func cmdTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "the configuration file (vsmtp.toml); default: the embedded default")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a readable trail")
	mode := fs.String("mode", "milter", "whose replies to report: milter (SEMANTICS §8) or smtp (standalone, §9)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: vsl-milter test [-c CONFIG] [--json] [--mode milter|smtp] SESSION")
		fs.PrintDefaults()
	}
	files, ok := parseInterspersed(fs, args)
	if !ok {
		return 2
	}
	if len(files) != 1 {
		fs.Usage()
		return 2
	}
	var m dryrun.Mode
	switch *mode {
	case "milter":
		m = dryrun.Milter
	case "smtp":
		m = dryrun.SMTP
	default:
		fmt.Fprintf(stderr, "vsl-milter test: --mode must be milter or smtp, not %q\n", *mode)
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
	f, err := os.Open(files[0])
	if err != nil {
		fmt.Fprintf(stderr, "vsl-milter test: %v\n", err)
		return 1
	}
	defer f.Close()
	script, err := dryrun.Parse(files[0], f)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	opts := dryrun.Options{
		Mode: m, OnError: onError(cfg), ServerName: cfg.Server.Domain, Deadline: cfg.Milter.StageDeadline,
		Log: func(level, msg string) { fmt.Fprintf(stderr, "log %s: %s\n", level, msg) },
	}
	rep := dryrun.Run(context.Background(), rules, script, opts)
	if *asJSON {
		b, err := rep.JSON()
		if err != nil {
			fmt.Fprintf(stderr, "vsl-milter test: %v\n", err)
			return 1
		}
		stdout.Write(b)
		return 0
	}
	rep.WriteText(stdout)
	return 0
}
