// Command report turns the raw output of bench/run.sh into BENCHMARKS.md:
// the machine and versions, the engine tables with medians and ratios to
// vSL, the check against the performance target, the milter session
// tables, the Postfix and standalone tables as their scripts printed them,
// and the hand-written notes.
//
//	report -engines out/engines.txt [-milter out/milter.txt] [-postfix out/postfix.txt]
//	       [-standalone out/standalone.txt] [-notes NOTES.md] [-o ../BENCHMARKS.md]
//
// It computes nothing it is not given: every number comes from the files.
// The engine versions come from its own build information, which is the
// bench module's build list, so they are the versions that were measured.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/vsl-milter/vsl-milter/bench/engines"
)

// input is one section's raw file and the command that produced it.
type input struct{ file, cmd string }

type config struct {
	engines, milter, postfix, standalone input
	notes, runCmd, commit                string
	now                                  time.Time
}

func main() {
	var c config
	flag.StringVar(&c.engines.file, "engines", "", "`go test -bench` output of bench/engines (required)")
	flag.StringVar(&c.engines.cmd, "engines-cmd", "", "the command that produced -engines")
	flag.StringVar(&c.milter.file, "milter", "", "`go test -bench Session` output of the milter package")
	flag.StringVar(&c.milter.cmd, "milter-cmd", "", "the command that produced -milter")
	flag.StringVar(&c.postfix.file, "postfix", "", "what bench/postfix.sh printed (a markdown table), or why it did not run")
	flag.StringVar(&c.postfix.cmd, "postfix-cmd", "", "the command that produced -postfix")
	flag.StringVar(&c.standalone.file, "standalone", "", "what bench/standalone.sh printed, or why it did not run")
	flag.StringVar(&c.standalone.cmd, "standalone-cmd", "", "the command that produced -standalone")
	flag.StringVar(&c.notes, "notes", "", "markdown appended as the closing notes")
	flag.StringVar(&c.runCmd, "run", "bench/run.sh", "the command line that made the report")
	flag.StringVar(&c.commit, "commit", "", "the vsl-milter commit measured")
	out := flag.String("o", "", "write the report to this file instead of standard output")
	flag.Parse()
	if c.engines.file == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	c.now = time.Now().UTC()
	doc, err := build(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	if *out == "" {
		os.Stdout.Write(doc)
		return
	}
	if err := os.WriteFile(*out, doc, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// build writes the whole document.
func build(c config) ([]byte, error) {
	eng, err := readBench(c.engines.file)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `%s` on %s. Do not edit: run it again (`bench/run.sh --quick` for a short run, "+
		"`bench/run.sh` for the full one). Every figure is a median; each section says of how many runs. "+
		"The raw output is in `bench/out/`.\n\n",
		c.runCmd, c.now.Format("2006-01-02 15:04 MST"))
	machine(&b, c, eng.cpu)
	engineSection(&b, c.engines.cmd, eng)

	if c.milter.file != "" {
		rs, err := readBench(c.milter.file)
		if err != nil {
			return nil, err
		}
		milterSection(&b, c.milter.cmd, rs)
	}
	if err := verbatim(&b, "Postfix with and without milters", c.postfix); err != nil {
		return nil, err
	}
	if err := verbatim(&b, "Standalone mode", c.standalone); err != nil {
		return nil, err
	}
	if c.notes != "" {
		notes, err := os.ReadFile(c.notes)
		if err != nil {
			return nil, err
		}
		b.WriteString("## Notes\n\n")
		b.Write(bytes.TrimSpace(notes))
		b.WriteString("\n")
	}
	return b.Bytes(), nil
}

func readBench(path string) (*results, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rs, err := parseBench(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rs.names) == 0 {
		return nil, fmt.Errorf("%s: no benchmark results", path)
	}
	return rs, nil
}

// machine writes the machine and the versions measured.
func machine(w io.Writer, c config, cpu string) {
	t := &table{head: []string{"", ""}}
	if m := cpuModel(); m != "" {
		cpu = m
	}
	desc := fmt.Sprintf("%s, %s", cpu, plural(runtime.NumCPU(), "CPU", "CPUs"))
	if mem := memTotal(); mem != "" {
		desc += ", " + mem
	}
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		desc += ", Linux " + strings.TrimSpace(string(k))
	}
	t.add("machine", desc)
	t.add("Go", runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)
	vslDesc := "this checkout"
	if c.commit != "" {
		vslDesc = "commit " + c.commit
	}
	t.add("vSL", vslDesc)
	deps := buildDeps()
	for _, e := range engines.Engines[1:] {
		mod := engines.Modules[e]
		v := deps[mod]
		if v == "" {
			v = "(unknown)"
		}
		t.add(engines.Names[e], fmt.Sprintf("`%s` %s", mod, v))
	}
	fmt.Fprintf(w, "%s\n", t)
}

// buildDeps maps the module paths of this binary's dependencies to their
// versions.
func buildDeps() map[string]string {
	m := map[string]string{}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return m
	}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		m[d.Path] = d.Version
	}
	return m
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func memTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return ""
	}
	var kb float64
	for _, line := range strings.Split(string(data), "\n") {
		if _, err := fmt.Sscanf(line, "MemTotal: %g kB", &kb); err == nil {
			return fmt.Sprintf("%.1f GiB RAM", kb/(1<<20))
		}
	}
	return ""
}

// verbatim writes a section whose content a script printed, or says why
// there is none.
func verbatim(w io.Writer, title string, in input) error {
	fmt.Fprintf(w, "## %s\n\n", title)
	if in.file == "" {
		fmt.Fprintf(w, "Not run.\n\n")
		return nil
	}
	data, err := os.ReadFile(in.file)
	if err != nil {
		return err
	}
	if in.cmd != "" {
		fmt.Fprintf(w, "`%s`\n\n", in.cmd)
	}
	fmt.Fprintf(w, "%s\n\n", bytes.TrimSpace(data))
	return nil
}
