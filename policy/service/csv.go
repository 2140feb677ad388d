package service

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/vsl-milter/vsl-milter/internal/durable"
	"github.com/vsl-milter/vsl-milter/vsl"
)

// Access is the access mode of a csv table.
type Access uint8

// The access modes, named in declarations as the open(2) flags.
const (
	ReadOnly  Access = iota + 1 // "O_RDONLY": get only
	WriteOnly                   // "O_WRONLY": set and rm only
	ReadWrite                   // "O_RDWR": get, set and rm
)

// String returns the mode as declared: "O_RDONLY", "O_WRONLY" or "O_RDWR".
func (a Access) String() string {
	switch a {
	case ReadOnly:
		return "O_RDONLY"
	case WriteOnly:
		return "O_WRONLY"
	case ReadWrite:
		return "O_RDWR"
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

// CanRead reports whether get is allowed.
func (a Access) CanRead() bool { return a == ReadOnly || a == ReadWrite }

// CanWrite reports whether set and rm are allowed.
func (a Access) CanWrite() bool { return a == WriteOnly || a == ReadWrite }

// Refresh says when a csv table is read again.
type Refresh uint8

// The refresh modes.
const (
	RefreshAlways Refresh = iota + 1 // "always": re-read when the file changed (checked at every get)
	RefreshNo                        // "no": read once at load (the service's own writes are seen)
)

// String returns the mode as declared: "always" or "no".
func (r Refresh) String() string {
	switch r {
	case RefreshAlways:
		return "always"
	case RefreshNo:
		return "no"
	}
	return fmt.Sprintf("Refresh(%d)", uint8(r))
}

// AccessError is the error of an operation the table's access mode forbids.
type AccessError struct {
	Service string // the service's name
	Access  Access
	Op      string // "get", "set" or "rm"
}

// Error names the service, its access mode and the refused operation.
func (e *AccessError) Error() string {
	want := "O_WRONLY or O_RDWR"
	if e.Op == "get" {
		want = "O_RDONLY or O_RDWR"
	}
	return fmt.Sprintf("csv service %s is opened %s: %s is not allowed (access must be %s)", e.Service, e.Access, e.Op, want)
}

// CSV is a db:csv service: a CSV file used as a table keyed by the first
// field of each record. Fields are read with surrounding white space
// trimmed (as vSMTP did). Writes replace the file atomically (a new file
// written in the same directory, synced, renamed over the old one, and the
// directory synced), so readers in any process see the old table or the
// new one, never a torn file; writers in this process take turns. Create
// one with NewCSV; the configuration fields must not change afterwards.
type CSV struct {
	Name      string // the service's name (v2: the connector as written)
	Path      string // the connector, absolute
	Access    Access
	Refresh   Refresh
	Delimiter rune

	mu    sync.Mutex            // serialises writes and re-reads
	snap  atomic.Pointer[table] // the table as last read or written
	loads atomic.Int64          // how many times the file was parsed
}

// table is an immutable parsed version of the file.
type table struct {
	records [][]string
	index   map[string]int // key -> first record with it
	info    os.FileInfo    // the file it was read from; nil when absent
}

// NewCSV opens the table at path (made absolute against the working
// directory when relative). A read-only table must exist and is read now;
// a writable one is read now when it exists, else it is created by the
// first write, and its directory must exist.
func NewCSV(name, path string, access Access, refresh Refresh, delimiter rune) (*CSV, error) {
	if err := checkDelimiter(delimiter); err != nil {
		return nil, err
	}
	if !access.CanRead() && !access.CanWrite() {
		return nil, fmt.Errorf("invalid access mode %s", access)
	}
	if refresh != RefreshAlways && refresh != RefreshNo {
		return nil, fmt.Errorf("invalid refresh mode %s", refresh)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("connector %q: %w", path, err)
	}
	c := &CSV{Name: name, Path: abs, Access: access, Refresh: refresh, Delimiter: delimiter}
	t := &table{index: map[string]int{}}
	if access.CanRead() {
		var lt *table
		lt, err = c.load()
		if err == nil {
			t = lt
		}
	} else if fi, serr := os.Stat(abs); serr != nil {
		err = fmt.Errorf("connector: %w", serr)
	} else if fi.IsDir() {
		return nil, fmt.Errorf("connector %s is a directory", abs)
	}
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist) && access.CanWrite():
		dir := filepath.Dir(abs)
		if fi, derr := os.Stat(dir); derr != nil || !fi.IsDir() {
			return nil, fmt.Errorf("connector %s: directory %s does not exist", abs, dir)
		}
	default:
		return nil, err
	}
	c.snap.Store(t)
	return c, nil
}

// checkDelimiter rejects what encoding/csv cannot use as a separator.
func checkDelimiter(r rune) error {
	if r == 0 || r == '"' || r == '\r' || r == '\n' || r == utf8.RuneError || !utf8.ValidRune(r) {
		return fmt.Errorf("invalid delimiter %q", r)
	}
	return nil
}

// buildCSV builds a db:csv service from its parameter map; a relative
// connector resolves against dir. v1 requires every key (as vSMTP v1
// did); v2 defaults to O_RDWR, "always" and ",".
func buildCSV(name string, v vsl.Value, dir string, d dialect) (*CSV, error) {
	o, err := newOptions(v, "the parameters of a db:csv service")
	if err != nil {
		return nil, err
	}
	required := d == dialectV1
	path, _, err := o.str("connector", true)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New(`key "connector" is empty`)
	}
	access := ReadWrite
	if s, ok, err := o.str("access", required); err != nil {
		return nil, err
	} else if ok {
		switch s {
		case "O_RDONLY":
			access = ReadOnly
		case "O_WRONLY":
			access = WriteOnly
		case "O_RDWR":
			access = ReadWrite
		default:
			return nil, fmt.Errorf(`key "access" must be "O_RDONLY", "O_WRONLY" or "O_RDWR", not %q`, s)
		}
	}
	refresh := RefreshAlways
	if s, ok, err := o.str("refresh", required); err != nil {
		return nil, err
	} else if ok {
		switch s {
		case "always":
			refresh = RefreshAlways
		case "no":
			refresh = RefreshNo
		default:
			return nil, fmt.Errorf(`key "refresh" must be "always" or "no", not %q`, s)
		}
	}
	delim := ','
	if dv, ok := o.get("delimiter"); !ok {
		if required {
			return nil, o.missing("delimiter")
		}
	} else {
		switch dv.Kind() {
		case vsl.KindChar:
			delim = dv.AsChar()
		case vsl.KindString:
			s := dv.AsString()
			r, n := utf8.DecodeRuneInString(s)
			if n == 0 || n != len(s) {
				return nil, fmt.Errorf(`key "delimiter" must be a single character, not %q`, s)
			}
			delim = r
		default:
			return nil, fmt.Errorf(`key "delimiter" must be a single character, not %s`, dv.TypeName())
		}
		if err := checkDelimiter(delim); err != nil {
			return nil, fmt.Errorf(`key "delimiter": %w`, err)
		}
	}
	if err := o.done(); err != nil {
		return nil, err
	}
	if name == "" {
		name = path
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	return NewCSV(name, path, access, refresh, delim)
}

// TypeName returns "db:csv".
func (c *CSV) TypeName() string { return TypeCSV }

// String returns "service NAME (db:csv)".
func (c *CSV) String() string { return "service " + c.Name + " (db:csv)" }

// Equal reports whether other is this very service.
func (c *CSV) Equal(other vsl.Value) (bool, bool) { return sameHost(c, other) }

// Attr exposes the declaration to scripts: name, connector (absolute),
// access, refresh and delimiter.
func (c *CSV) Attr(name string) (vsl.Value, bool, error) {
	switch name {
	case "name":
		return vsl.String(c.Name), true, nil
	case "connector":
		return vsl.String(c.Path), true, nil
	case "access":
		return vsl.String(c.Access.String()), true, nil
	case "refresh":
		return vsl.String(c.Refresh.String()), true, nil
	case "delimiter":
		return vsl.String(string(c.Delimiter)), true, nil
	}
	return vsl.Value{}, false, nil
}

// Get returns the first record whose first field is key, or nil when none
// is. The caller must not change the record.
func (c *CSV) Get(key string) ([]string, error) {
	if !c.Access.CanRead() {
		return nil, &AccessError{Service: c.Name, Access: c.Access, Op: "get"}
	}
	t, err := c.current()
	if err != nil {
		return nil, err
	}
	if i, ok := t.index[key]; ok {
		return t.records[i], nil
	}
	return nil, nil
}

// current returns the table, re-reading the file first when the refresh
// mode is "always" and the file changed (another inode, size or
// modification time) since it was last read.
func (c *CSV) current() (*table, error) {
	t := c.snap.Load()
	if c.Refresh == RefreshNo || c.unchanged(t) {
		return t, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t = c.snap.Load()
	if c.unchanged(t) {
		return t, nil
	}
	nt, err := c.load()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && c.Access.CanWrite() {
			nt = &table{index: map[string]int{}}
		} else {
			return nil, err
		}
	}
	c.snap.Store(nt)
	return nt, nil
}

// unchanged reports whether the file is still the one t was read from.
func (c *CSV) unchanged(t *table) bool {
	fi, err := os.Stat(c.Path)
	if err != nil {
		return t.info == nil && errors.Is(err, fs.ErrNotExist) && c.Access.CanWrite()
	}
	return t.info != nil && os.SameFile(t.info, fi) && t.info.Size() == fi.Size() && t.info.ModTime().Equal(fi.ModTime())
}

// load reads and parses the file.
func (c *CSV) load() (*table, error) {
	f, err := os.Open(c.Path)
	if err != nil {
		return nil, fmt.Errorf("opening connector: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading connector: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("connector %s is a directory", c.Path)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading connector: %w", err)
	}
	return c.parse(data, fi)
}

// parse builds a table from the file's contents.
func (c *CSV) parse(data []byte, fi os.FileInfo) (*table, error) {
	c.loads.Add(1)
	recs, err := c.split(data)
	if err != nil {
		return nil, err
	}
	t := &table{records: make([][]string, len(recs)), index: make(map[string]int, len(recs)), info: fi}
	for i, r := range recs {
		t.records[i] = r.fields
		if _, dup := t.index[r.fields[0]]; !dup {
			t.index[r.fields[0]] = i
		}
	}
	return t, nil
}

// rawRecord is a record with the bytes it was read from.
type rawRecord struct {
	fields []string
	raw    []byte
}

// split parses data into records, keeping each record's bytes (and the
// blank lines before it) so that a rewrite copies kept records verbatim.
func (c *CSV) split(data []byte) ([]rawRecord, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma = c.Delimiter
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	r.TrimLeadingSpace = !unicode.IsSpace(c.Delimiter)
	var out []rawRecord
	var prev int64
	for {
		fields, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", c.Path, err)
		}
		for i, f := range fields {
			fields[i] = strings.TrimSpace(f)
		}
		off := r.InputOffset()
		out = append(out, rawRecord{fields: fields, raw: data[prev:off]})
		prev = off
	}
	return out, nil
}

// Set appends a record to the file.
func (c *CSV) Set(record []string) error {
	if !c.Access.CanWrite() {
		return &AccessError{Service: c.Name, Access: c.Access, Op: "set"}
	}
	if len(record) == 0 {
		return errors.New("a record needs at least one field")
	}
	var line bytes.Buffer
	w := csv.NewWriter(&line)
	w.Comma = c.Delimiter
	if err := w.Write(record); err != nil {
		return fmt.Errorf("encoding the record: %w", err)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("encoding the record: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	target, old, oldInfo, err := c.readForWrite()
	if err != nil {
		return err
	}
	data := make([]byte, 0, len(old)+1+line.Len())
	data = append(data, old...)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	data = append(data, line.Bytes()...)
	return c.replace(target, data, oldInfo)
}

// Remove deletes every record whose first field is key and returns how
// many it deleted. The file is rewritten only when some record matched;
// the records kept are copied byte for byte.
func (c *CSV) Remove(key string) (int, error) {
	if !c.Access.CanWrite() {
		return 0, &AccessError{Service: c.Name, Access: c.Access, Op: "rm"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	target, old, oldInfo, err := c.readForWrite()
	if err != nil {
		return 0, err
	}
	recs, err := c.split(old)
	if err != nil {
		return 0, err
	}
	data := make([]byte, 0, len(old))
	removed, end := 0, 0
	for _, r := range recs {
		end += len(r.raw)
		if r.fields[0] == key {
			removed++
			continue
		}
		data = append(data, r.raw...)
	}
	if removed == 0 {
		return 0, nil
	}
	data = append(data, old[end:]...)
	return removed, c.replace(target, data, oldInfo)
}

// readForWrite returns the file to replace (the connector, or the file a
// symbolic link connector points to), its contents and its info (nil
// contents and info when it does not exist yet). Call with c.mu held.
func (c *CSV) readForWrite() (string, []byte, os.FileInfo, error) {
	target := c.Path
	if p, err := filepath.EvalSymlinks(c.Path); err == nil {
		target = p
	}
	f, err := os.Open(target)
	if errors.Is(err, fs.ErrNotExist) {
		return target, nil, nil, nil
	}
	if err != nil {
		return "", nil, nil, fmt.Errorf("opening connector: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", nil, nil, fmt.Errorf("reading connector: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return "", nil, nil, fmt.Errorf("reading connector: %w", err)
	}
	return target, data, fi, nil
}

// replace writes data over target atomically and makes it the current
// table. Call with c.mu held.
func (c *CSV) replace(target string, data []byte, old os.FileInfo) error {
	fi, err := writeAtomic(target, data, old)
	if err != nil {
		return err
	}
	if !c.Access.CanRead() {
		return nil
	}
	t, err := c.parse(data, fi)
	if err != nil {
		return err
	}
	c.snap.Store(t)
	return nil
}

// writeAtomic replaces path with data: it writes a temporary file in the
// same directory with the mode and, when allowed, the owner of the old
// file (0640 for a new one), syncs it, renames it over path and syncs the
// directory. It returns the info of the new file.
func writeAtomic(path string, data []byte, old os.FileInfo) (os.FileInfo, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) (os.FileInfo, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	mode := fs.FileMode(0o640)
	if old != nil {
		mode = old.Mode().Perm()
		if st, ok := old.Sys().(*syscall.Stat_t); ok {
			if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
				return fail(err)
			}
		}
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return fi, nil
}

// csvKey converts a key argument: a string, or a host value (an address,
// an fqdn, ...) by its text.
func csvKey(v vsl.Value) (string, bool) {
	switch v.Kind() {
	case vsl.KindString:
		return v.AsString(), true
	case vsl.KindHost:
		return v.AsHost().String(), true
	}
	return "", false
}

// csvGet is the builtin behind csv.get(key).
func csvGet(_ *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	if len(args) != 2 {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	c, ok := args[0].AsHost().(*CSV)
	if !ok {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	key, ok := csvKey(args[1])
	if !ok {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	rec, err := c.Get(key)
	if err != nil {
		return vsl.Value{}, err
	}
	return stringsValue(rec), nil
}

// csvSet is the builtin behind csv.set([fields]). Fields are strings, or
// scalars and host values written as their text.
func csvSet(_ *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	if len(args) != 2 {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	c, ok := args[0].AsHost().(*CSV)
	if !ok {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	a := args[1].AsArray()
	if a == nil {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	rec := make([]string, len(a.Elems))
	for i, e := range a.Elems {
		switch e.Kind() {
		case vsl.KindString, vsl.KindChar, vsl.KindInt, vsl.KindFloat, vsl.KindBool, vsl.KindHost:
			rec[i] = vsl.ToString(e)
		default:
			return vsl.Value{}, fmt.Errorf("field %d of the record is %s: fields must be strings", i, e.TypeName())
		}
	}
	return vsl.Value{}, c.Set(rec)
}

// csvRm is the builtin behind csv.rm(key).
func csvRm(_ *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	if len(args) != 2 {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	c, ok := args[0].AsHost().(*CSV)
	if !ok {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	key, ok := csvKey(args[1])
	if !ok {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	_, err := c.Remove(key)
	return vsl.Value{}, err
}
