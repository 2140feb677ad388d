package smtpd_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A dialogue file holds SMTP sessions separated by lines of exactly "---".
// Each starts with "#" comment lines (the first names the test; more may
// stand in the dialogue, queue and transactions sections) and has
// sections, each introduced by a line of its own:
//
//	config:        vsmtp.toml text ($CERT and $KEY: the test certificate)
//	rules:         main.vsl
//	dialogue:      "C: line" is sent (with CRLF), "S: line" is the next
//	               line the server must send, exactly; "S: <closed>" says
//	               the server closes the connection there
//	queue:         one line per message queued (fakeQueue summaries)
//	transactions:  the outcomes counted, in order (none when absent)
//
// Consecutive "C:" lines are sent before anything is read, so a dialogue
// can pipeline commands.
type dialogue struct {
	name, file   string
	line         int
	config       string
	rules        string
	steps        []string
	queue        []string
	transactions []string
}

func readDialogues(t *testing.T, path string) []dialogue {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []dialogue
	var d *dialogue
	section := ""
	for i, l := range strings.Split(string(data), "\n") {
		if d == nil {
			out = append(out, dialogue{file: path, line: i + 1})
			d, section = &out[len(out)-1], ""
		}
		switch {
		case l == "---":
			d = nil
		case section == "" && strings.HasPrefix(l, "#"):
			if d.name == "" {
				d.name = strings.TrimSpace(strings.TrimPrefix(l, "#"))
			}
		case l == "config:" || l == "rules:" || l == "dialogue:" || l == "queue:" || l == "transactions:":
			section = strings.TrimSuffix(l, ":")
		case section != "rules" && section != "config" && strings.HasPrefix(l, "#"):
		case section == "config":
			d.config += l + "\n"
		case section == "rules":
			d.rules += l + "\n"
		case strings.TrimSpace(l) == "":
		case section == "dialogue":
			if !strings.HasPrefix(l, "C:") && !strings.HasPrefix(l, "S: ") {
				t.Fatalf("%s:%d: a dialogue line starts with \"C:\" or \"S: \"", path, i+1)
			}
			d.steps = append(d.steps, l)
		case section == "queue":
			d.queue = append(d.queue, l)
		case section == "transactions":
			d.transactions = append(d.transactions, l)
		default:
			t.Fatalf("%s:%d: line outside a section", path, i+1)
		}
	}
	return out
}

// TestDialogues plays the sessions of testdata/*.dialogue with a raw
// client and checks every reply line, what was queued and what was
// counted.
func TestDialogues(t *testing.T) {
	files, err := filepath.Glob("testdata/*.dialogue")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dialogue files: %v", err)
	}
	for _, file := range files {
		for _, d := range readDialogues(t, file) {
			t.Run(filepath.Base(file)+"/"+strings.ReplaceAll(d.name, " ", "_"), func(t *testing.T) {
				t.Parallel()
				d.play(t)
			})
		}
	}
}

func (d dialogue) play(t *testing.T) {
	h := newHarness(t, d.rules, setup{toml: d.config})
	c := dialRaw(t, h.addr)
	var pending []string
	for _, step := range d.steps {
		if text, ok := strings.CutPrefix(step, "C:"); ok {
			pending = append(pending, strings.TrimPrefix(text, " "))
			continue
		}
		if len(pending) > 0 {
			c.send(pending...)
			pending = nil
		}
		want := strings.TrimPrefix(step, "S: ")
		if want == "<closed>" {
			c.expectClosed()
			continue
		}
		got, err := c.line()
		if err != nil {
			t.Fatalf("%s:%d: waiting for %q: %v", d.file, d.line, want, err)
		}
		if got != want {
			t.Fatalf("%s:%d: reply line:\n got %q\nwant %q", d.file, d.line, got, want)
		}
	}
	if len(pending) > 0 {
		c.send(pending...)
	}
	c.conn.Close()
	h.waitClosed()
	var got []string
	for _, q := range h.queue.all() {
		got = append(got, q.summary())
	}
	if !slices.Equal(got, d.queue) {
		t.Errorf("%s:%d: queued:\n got %q\nwant %q", d.file, d.line, got, d.queue)
	}
	if outcomes := h.metrics.outcomes(); !slices.Equal(outcomes, d.transactions) {
		t.Errorf("%s:%d: transactions:\n got %q\nwant %q", d.file, d.line, outcomes, d.transactions)
	}
}
