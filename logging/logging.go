// Package logging builds the structured loggers of vsl-milter on
// hashicorp/go-hclog: one root logger per process, in text for a terminal
// or JSON for a log collector, the adapter that carries the rules'
// log(level, text) calls into it, and a policy.Observer that reports script
// errors with their file:line:col.
//
// The package decides how things are logged, never what happens to mail:
// it must not know the milter or SMTP front ends, nor the configuration
// file format.
package logging

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// ErrUnknownLevel is wrapped by the error New returns for a level name it
// does not know.
var ErrUnknownLevel = errors.New("unknown log level")

// Options configure a logger.
type Options struct {
	// Level is the least severe level written: trace, debug, info, warn
	// or error (case-insensitive; "warning" is warn). Empty means info.
	Level string
	// JSON writes one JSON object per line instead of text.
	JSON bool
	// Output receives the lines; nil means standard error.
	Output io.Writer
}

// ParseLevel returns the hclog level named name (see Options.Level).
func ParseLevel(name string) (hclog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "trace":
		return hclog.Trace, nil
	case "debug":
		return hclog.Debug, nil
	case "", "info":
		return hclog.Info, nil
	case "warn", "warning":
		return hclog.Warn, nil
	case "error":
		return hclog.Error, nil
	}
	return hclog.NoLevel, fmt.Errorf("%w %q: use trace, debug, info, warn or error", ErrUnknownLevel, name)
}

// New returns the root logger named name. It fails, wrapping
// ErrUnknownLevel, when opts.Level is not a level name.
func New(name string, opts Options) (hclog.Logger, error) {
	level, err := ParseLevel(opts.Level)
	if err != nil {
		return nil, fmt.Errorf("logger %q: %w", name, err)
	}
	out := opts.Output
	if out == nil {
		out = os.Stderr
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      level,
		JSONFormat: opts.JSON,
		Output:     out,
		Color:      hclog.ColorOff,
	}), nil
}

// ScriptLog adapts l to policy.RunOptions.Log: each log(level, text) call
// of a rule is written at that level with "source"="script". A level l
// does not know (the runner only passes known ones) is written at info
// with the script's level in a "script_level" field.
func ScriptLog(l hclog.Logger) func(level, msg string) {
	return func(level, msg string) {
		lv, err := ParseLevel(level)
		if err != nil || level == "" {
			l.Info(msg, "source", "script", "script_level", level)
			return
		}
		l.Log(lv, msg, "source", "script")
	}
}
