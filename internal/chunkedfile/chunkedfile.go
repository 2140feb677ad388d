// Package chunkedfile reads golden test files that hold several independent
// test scripts ("chunks") separated by lines of exactly "---", each carrying
// its expectations in comments on the lines they concern:
//
//	let x = ;   ### "expected an expression"
//	print(1);   ## 1
//
// A "###" comment holds a Go regular expression, in Go string-literal syntax,
// that must match an error reported for that line. A "##" comment holds one
// expected line of output. Chunk positions are those of the whole file, so an
// error's line number matches the line in the file an editor shows: the lines
// of earlier chunks are kept as blank lines in each chunk's source.
//
// The format follows google/starlark-go's internal/chunkedfile.
package chunkedfile

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Chunk is one script of a chunked file.
type Chunk struct {
	Source string // the chunk, padded with blank lines so line numbers match the file
	Line   int    // the first line of the chunk in the file (1-based)
	Output []string
	errs   map[int][]*regexp.Regexp // line -> expected error patterns
	file   string
	t      testing.TB
}

// Read parses the chunked file at path. Malformed expectations fail t.
func Read(t testing.TB, path string) []*Chunk {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var chunks []*Chunk
	lines := strings.Split(string(data), "\n")
	start := 0
	flush := func(end int) {
		c := &Chunk{Line: start + 1, errs: map[int][]*regexp.Regexp{}, file: path, t: t}
		var b strings.Builder
		for i := 0; i < start; i++ {
			b.WriteByte('\n')
		}
		for i := start; i < end; i++ {
			line := lines[i]
			b.WriteString(line)
			b.WriteByte('\n')
			if j := strings.Index(line, "###"); j >= 0 {
				lit := strings.TrimSpace(line[j+3:])
				pat, err := strconv.Unquote(lit)
				if err != nil {
					t.Fatalf("%s:%d: bad ### expectation %s: %v", path, i+1, lit, err)
				}
				re, err := regexp.Compile(pat)
				if err != nil {
					t.Fatalf("%s:%d: bad regexp %q: %v", path, i+1, pat, err)
				}
				c.errs[i+1] = append(c.errs[i+1], re)
			} else if j := strings.Index(line, "## "); j >= 0 {
				c.Output = append(c.Output, line[j+3:])
			} else if strings.HasSuffix(strings.TrimRight(line, " \t"), "##") {
				c.Output = append(c.Output, "")
			}
		}
		c.Source = b.String()
		chunks = append(chunks, c)
	}
	for i, line := range lines {
		if line == "---" {
			flush(i)
			start = i + 1
		}
	}
	flush(len(lines))
	return chunks
}

// HasErrors reports whether the chunk expects at least one error.
func (c *Chunk) HasErrors() bool { return len(c.errs) > 0 }

// GotError records an error reported at line; it fails the test if no
// expectation on that line matches msg. A matched expectation is consumed.
func (c *Chunk) GotError(line int, msg string) {
	c.t.Helper()
	for i, re := range c.errs[line] {
		if re.MatchString(msg) {
			c.errs[line] = append(c.errs[line][:i:i], c.errs[line][i+1:]...)
			if len(c.errs[line]) == 0 {
				delete(c.errs, line)
			}
			return
		}
	}
	c.t.Errorf("%s:%d: unexpected error: %s", c.file, line, msg)
}

// Done fails the test for every expected error that was never reported.
func (c *Chunk) Done() {
	c.t.Helper()
	for line, res := range c.errs {
		for _, re := range res {
			c.t.Errorf("%s:%d: expected error matching %q was not reported", c.file, line, re)
		}
	}
}

// Name returns a subtest name for the chunk.
func (c *Chunk) Name() string { return fmt.Sprintf("line%d", c.Line) }
