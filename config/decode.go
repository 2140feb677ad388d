package config

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// The decoder walks the TOML document table by table. Every table is decoded
// into a map of toml.Primitive, and every value is then converted on its own,
// so that one bad value does not hide the next one: all problems of a file are
// reported together. Each table remembers the keys the schema asked for,
// which gives both the unknown keys and the list of valid ones.
//
// toml.MetaData.Undecoded cannot serve here: decoding a table into a map marks
// every key of it as decoded, known or not, while decoding into structs stops
// at the first type error and matches keys case-insensitively.

// decoder holds one file being decoded.
type decoder struct {
	file  string
	lines []string
	md    toml.MetaData
	top   map[string]toml.Primitive
	errs  Errors
	// set records, by canonical key ("server.tls.certificate"), where each
	// setting was written; validate uses it to place its messages.
	set map[string]setting
}

// setting is where a value was written, and what was written.
type setting struct {
	key       toml.Key // as written: flat keys have one element
	line, col int
	raw       any
	flat      bool // written in the flat form
}

// entry is one key of a table, with its decoded value.
type entry struct {
	key  toml.Key
	prim toml.Primitive
	raw  any
}

// newDecoder parses data; a TOML syntax error is returned as Errors.
func newDecoder(file string, data []byte) (*decoder, error) {
	d := &decoder{file: file, lines: strings.Split(string(data), "\n"), set: make(map[string]setting)}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&d.top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, Errors{{File: file, Line: pe.Position.Line, Col: pe.Position.Col, Msg: "syntax error: " + pe.Message}}
		}
		return nil, Errors{{File: file, Msg: fmt.Sprintf("syntax error: %v", err)}}
	}
	d.md = md
	return d, nil
}

// table is one TOML table being read.
type table struct {
	d       *decoder
	self    entry  // the table's own key; empty at the top level
	canon   string // canonical path; "" at the top level
	entries map[string]toml.Primitive
	known   map[string]bool
}

// errorAt reports a problem with the key of e, placed where it is written.
func (d *decoder) errorAt(e entry, format string, args ...any) {
	line, col := d.position(e)
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Col: col, Key: e.key.String(), Msg: fmt.Sprintf(format, args...)})
}

// record notes where the setting canon was written; writing it twice (once
// in the flat form, once in a section) is an error.
func (d *decoder) record(canon string, e entry, flat bool) bool {
	line, col := d.position(e)
	if prev, dup := d.set[canon]; dup {
		d.errs = append(d.errs, &Error{File: d.file, Line: line, Col: col, Key: e.key.String(),
			Msg: fmt.Sprintf("already set by %s on line %d; set it only once", prev.key, prev.line)})
		return false
	}
	d.set[canon] = setting{key: e.key, line: line, col: col, raw: e.raw, flat: flat}
	return true
}

// entry looks a key up, registering it as valid for this table.
func (t *table) entry(name string) (entry, bool) {
	t.known[name] = true
	return t.lookup(name)
}

// lookup looks a key up without registering it.
func (t *table) lookup(name string) (entry, bool) {
	p, ok := t.entries[name]
	if !ok {
		return entry{}, false
	}
	key := append(append(toml.Key{}, t.self.key...), name)
	var raw any
	if err := t.d.md.PrimitiveDecode(p, &raw); err != nil {
		// Not expected: an empty interface accepts any TOML value.
		t.d.errs = append(t.d.errs, &Error{File: t.d.file, Key: key.String(), Msg: err.Error()})
		return entry{}, false
	}
	return entry{key: key, prim: p, raw: raw}, true
}

// has reports whether the table sets name to a non-empty value.
func (t *table) has(name string) bool {
	e, ok := t.lookup(name)
	return ok && !isEmpty(e.raw)
}

// names lists the keys of a table in file order.
func (t *table) names() []string {
	type named struct {
		name      string
		line, col int
	}
	list := make([]named, 0, len(t.entries))
	for _, name := range sortedKeys(t.entries) {
		n := named{name: name}
		if e, ok := t.lookup(name); ok {
			n.line, n.col = t.d.position(e)
		}
		list = append(list, n)
	}
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].line != list[j].line {
			return list[i].line < list[j].line
		}
		return list[i].col < list[j].col
	})
	names := make([]string, len(list))
	for i, n := range list {
		names[i] = n.name
	}
	return names
}

// sub reads the sub-table name with fn, then reports its unknown keys. It
// reports whether the table is present.
func (t *table) sub(name string, fn func(*table)) bool {
	e, ok := t.entry(name)
	if !ok {
		return false
	}
	if _, isTable := e.raw.(map[string]any); !isTable {
		t.d.errorAt(e, "invalid value %s: expected a table", render(e.raw))
		return false
	}
	canon := name
	if t.canon != "" {
		canon = t.canon + "." + name
	}
	st, ok := t.d.table(e, canon)
	if !ok {
		return false
	}
	t.d.record(canon, e, false)
	fn(st)
	st.checkUnknown()
	return true
}

// table opens the table held by e.
func (d *decoder) table(e entry, canon string) (*table, bool) {
	t := &table{d: d, self: e, canon: canon, known: make(map[string]bool)}
	if canon == "" {
		t.entries = d.top
		return t, true
	}
	if err := d.md.PrimitiveDecode(e.prim, &t.entries); err != nil {
		d.errorAt(e, "%v", err)
		return nil, false
	}
	return t, true
}

// checkUnknown reports the keys of t that the schema did not ask for.
func (t *table) checkUnknown() {
	var section, flat []string
	for name := range t.known {
		if _, isFlat := flatKey(name); isFlat && t.canon == "" && name != "server" {
			flat = append(flat, name)
		} else {
			section = append(section, name)
		}
	}
	sort.Strings(section)
	sort.Strings(flat)
	valid := "valid keys: " + strings.Join(section, ", ")
	if len(flat) > 0 {
		valid += "; in the flat form also: " + strings.Join(flat, ", ")
	}
	where := "at the top level"
	if t.canon != "" {
		where = "in [" + t.self.key.String() + "]"
	}
	for _, name := range t.names() {
		if t.known[name] {
			continue
		}
		if e, ok := t.lookup(name); ok {
			t.d.errorAt(e, "unknown key %s; %s", where, valid)
		}
	}
}

// bind converts the value of name into *dst when it is set; empty values
// count as not set (see isEmpty). It reports whether *dst was written.
func bind[T any](t *table, name string, dst *T, conv func(any) (T, error)) bool {
	return bindValue(t, name, dst, conv, false)
}

// bindKeepEmpty is bind for a key whose empty value means something.
func bindKeepEmpty[T any](t *table, name string, dst *T, conv func(any) (T, error)) bool {
	return bindValue(t, name, dst, conv, true)
}

func bindValue[T any](t *table, name string, dst *T, conv func(any) (T, error), keepEmpty bool) bool {
	e, ok := t.entry(name)
	if !ok || !keepEmpty && isEmpty(e.raw) {
		return false
	}
	canon, flat := name, false
	if t.canon != "" {
		canon = t.canon + "." + name
	} else if c, ok := flatKey(name); ok {
		canon, flat = c, true
	}
	if !t.d.record(canon, e, flat) {
		return false
	}
	v, err := conv(e.raw)
	if err != nil {
		t.d.errorAt(e, "invalid value %s: %v", render(e.raw), err)
		return false
	}
	*dst = v
	return true
}

// flatKey maps a top-level key of the flat form (vSMTP's guide prints its
// sections without their headers) to the setting it stands for.
func flatKey(name string) (canon string, ok bool) {
	switch name {
	case "domain":
		return "server.domain", true
	case "addr", "addr_submission", "addr_submissions":
		return "server.interfaces." + name, true
	case "security_level", "preempt_cipherlist", "handshake_timeout", "protocol_version",
		"cipher_suite", "certificate", "private_key":
		return "server.tls." + name, true
	case "must_be_authenticated", "enable_dangerous_mechanism_in_clair", "mechanisms", "attempt_count_max":
		return "server.smtp.auth." + name, true
	case "server":
		return "server.logs.level", true
	case "filepath":
		return "app.vsl.filepath", true
	}
	return "", false
}

// position locates the key of e: its line as TOML recorded it, and the
// column of the key on that line.
func (d *decoder) position(e entry) (line, col int) {
	if len(e.key) == 0 {
		return 0, 0
	}
	var pe toml.ParseError
	if err := d.md.PrimitiveDecode(e.prim, probe{}); errors.As(err, &pe) && pe.Position.Line > 0 {
		return pe.Position.Line, keyColumn(d.lines, pe.Position.Line, e.key[len(e.key)-1])
	}
	// A table only implied by its sub-tables ([a.b] implies a) has no
	// position of its own: use the first of its children's.
	var children map[string]toml.Primitive
	if _, isTable := e.raw.(map[string]any); !isTable || d.md.PrimitiveDecode(e.prim, &children) != nil {
		return 0, 0
	}
	for name, p := range children {
		var raw any
		if d.md.PrimitiveDecode(p, &raw) != nil {
			continue
		}
		key := append(append(toml.Key{}, e.key...), name)
		if l, c := d.position(entry{key: key, prim: p, raw: raw}); l > 0 && (line == 0 || l < line) {
			line, col = l, c
		}
	}
	return line, col
}

// probe gets a key's position out of the TOML decoder: a failing
// UnmarshalTOML makes it return a ParseError placed at the key being decoded.
type probe struct{}

// UnmarshalTOML always fails, see probe.
func (probe) UnmarshalTOML(any) error { return errors.New("position probe") }

// keyColumn finds the 1-based column of key on the given line: the start of
// a table header, else where the key is written as a whole word, else the
// first non-blank character.
func keyColumn(lines []string, line int, key string) int {
	if line < 1 || line > len(lines) {
		return 0
	}
	text := lines[line-1]
	indent := len(text) - len(strings.TrimLeft(text, " \t"))
	if strings.HasPrefix(text[indent:], "[") { // a table header: point at it
		return indent + 1
	}
	for from := 0; key != "" && from < len(text); {
		i := strings.Index(text[from:], key)
		if i < 0 {
			break
		}
		i += from
		end := i + len(key)
		if (i == 0 || !isBareKeyByte(text[i-1])) && (end == len(text) || !isBareKeyByte(text[end])) {
			if i > 0 && (text[i-1] == '"' || text[i-1] == '\'') {
				i-- // point at the opening quote of a quoted key
			}
			return utf8.RuneCountInString(text[:i]) + 1
		}
		from = i + 1
	}
	return indent + 1
}

func isBareKeyByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-'
}
