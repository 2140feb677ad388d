package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// detailed is an error that can render its source line and a caret.
type detailed interface{ Detailed() string }

// cmdScript runs a plain vSL script: print output to stdout, errors as
// FILE:LINE:COL: message (with the source line) to stderr, exit 1 on error.
func cmdScript(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("script", flag.ContinueOnError)
	fs.SetOutput(stderr)
	maxOps := fs.Int64("max-operations", 100_000_000, "operation budget of the run (0: unlimited)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: vsl-milter script FILE [--max-operations N]")
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
	file := files[0]

	env := vsl.NewEnv()
	env.Loader = vsl.FileLoader
	prog, err := vsl.LoadFile(file, env)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	lim := vsl.DefaultLimits()
	lim.MaxOperations = *maxOps
	th := vsl.NewThread(lim)
	th.Out = stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	th.Reset(ctx)
	if _, err := prog.Run(th); err != nil {
		printErr(stderr, err)
		return 1
	}
	return 0
}

func printErr(w io.Writer, err error) {
	var d detailed
	if errors.As(err, &d) {
		fmt.Fprintln(w, d.Detailed())
		return
	}
	fmt.Fprintln(w, err)
}

// parseInterspersed parses args with fs, accepting flags before and after
// the positional arguments, which it returns; ok is false on a flag error
// (already reported by fs).
func parseInterspersed(fs *flag.FlagSet, args []string) (positional []string, ok bool) {
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, false
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return positional, true
}
