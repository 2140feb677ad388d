package service

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestCSV writes content (unless nil) to a file in a fresh directory and
// opens it as a table.
func newTestCSV(t *testing.T, content []byte, access Access, refresh Refresh) (*CSV, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "table.csv")
	if content != nil {
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := NewCSV("t", path, access, refresh, ',')
	if err != nil {
		t.Fatalf("NewCSV: %v", err)
	}
	return c, path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestCSVWrites checks the file after each write: set appends an encoded
// record (adding a missing final newline), rm drops every record of the
// key and copies the others byte for byte.
func TestCSVWrites(t *testing.T) {
	type op struct {
		set []string
		rm  string
	}
	tests := []struct {
		name    string
		initial string
		ops     []op
		want    string
		removed int
	}{
		{name: "append", initial: "a,1\n", ops: []op{{set: []string{"b", "2"}}}, want: "a,1\nb,2\n"},
		{name: "append after a missing newline", initial: "a,1", ops: []op{{set: []string{"b", "2"}}}, want: "a,1\nb,2\n"},
		{name: "quoting", initial: "", ops: []op{{set: []string{"k", "with, comma", `with "quote"`}}},
			want: "k,\"with, comma\",\"with \"\"quote\"\"\"\n"},
		{name: "remove every record of a key", initial: "a,1\nb,2\na,3\nc,4\n", ops: []op{{rm: "a"}}, want: "b,2\nc,4\n", removed: 2},
		{name: "remove keeps others verbatim", initial: "  a , 1\n\"b\",  \"x, y\"\nc;;\n", ops: []op{{rm: "a"}},
			want: "\"b\",  \"x, y\"\nc;;\n", removed: 1},
		{name: "remove the last record without newline", initial: "a,1\nb,2", ops: []op{{rm: "b"}}, want: "a,1\n", removed: 1},
		{name: "remove nothing leaves the file alone", initial: "a,1\r\nb,2", ops: []op{{rm: "zz"}}, want: "a,1\r\nb,2"},
		{name: "remove a trimmed key", initial: " a ,1\nb,2\n", ops: []op{{rm: "a"}}, want: "b,2\n", removed: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, path := newTestCSV(t, []byte(tt.initial), ReadWrite, RefreshAlways)
			removed := 0
			for _, o := range tt.ops {
				if o.set != nil {
					if err := c.Set(o.set); err != nil {
						t.Fatalf("Set(%q): %v", o.set, err)
					}
				} else {
					n, err := c.Remove(o.rm)
					if err != nil {
						t.Fatalf("Remove(%q): %v", o.rm, err)
					}
					removed += n
				}
			}
			if got := readFile(t, path); got != tt.want {
				t.Errorf("file = %q, want %q", got, tt.want)
			}
			if removed != tt.removed {
				t.Errorf("removed %d records, want %d", removed, tt.removed)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only the table (temporary files left behind?)", len(entries))
			}
		})
	}
}

func TestCSVGet(t *testing.T) {
	c, _ := newTestCSV(t, []byte("john, j@example.com ,admin\n\"k, 2\",v\njohn,second\n\n x \n"), ReadOnly, RefreshNo)
	tests := []struct {
		key  string
		want []string
	}{
		{key: "john", want: []string{"john", "j@example.com", "admin"}},
		{key: "k, 2", want: []string{"k, 2", "v"}},
		{key: "x", want: []string{"x"}},
		{key: "nobody", want: nil},
		{key: " john", want: nil},
	}
	for _, tt := range tests {
		got, err := c.Get(tt.key)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Get(%q) = %q, %v; want %q", tt.key, got, err, tt.want)
		}
	}
}

func TestCSVRefreshAlways(t *testing.T) {
	c, path := newTestCSV(t, []byte("a,1\n"), ReadOnly, RefreshAlways)
	get := func(key string) []string {
		t.Helper()
		r, err := c.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	loads := c.loads.Load()
	for range 100 {
		get("a")
	}
	if n := c.loads.Load() - loads; n != 0 {
		t.Fatalf("an unchanged file was parsed %d more times", n)
	}
	if err := os.WriteFile(path, []byte("a,2\nb,3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := get("a"); !reflect.DeepEqual(got, []string{"a", "2"}) {
		t.Errorf("after a rewrite Get(a) = %q, want [a 2]", got)
	}
	if c.loads.Load()-loads != 1 {
		t.Errorf("the changed file was parsed %d times, want once", c.loads.Load()-loads)
	}
	// Same size, new modification time: read again.
	if err := os.WriteFile(path, []byte("a,9\nb,3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if got := get("a"); !reflect.DeepEqual(got, []string{"a", "9"}) {
		t.Errorf("after a same-size rewrite Get(a) = %q, want [a 9]", got)
	}
	// A read-only table whose file disappeared is an error naming it.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get("a"); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Get after the file was removed: %v, want an error naming %s", err, path)
	}
}

func TestCSVRefreshNo(t *testing.T) {
	c, path := newTestCSV(t, []byte("a,1\n"), ReadWrite, RefreshNo)
	if err := os.WriteFile(path, []byte("a,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Get("a"); !reflect.DeepEqual(got, []string{"a", "1"}) {
		t.Errorf("refresh no: Get(a) = %q after an outside change, want the table read at load [a 1]", got)
	}
	// Its own writes are seen, and are made on the file as it is now.
	if err := c.Set([]string{"b", "3"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Get("b"); !reflect.DeepEqual(got, []string{"b", "3"}) {
		t.Errorf("Get(b) = %q after Set, want [b 3]", got)
	}
	if got := readFile(t, path); got != "a,2\nb,3\n" {
		t.Errorf("file = %q, want the outside change kept", got)
	}
}

func TestCSVOwnWritesDoNotReparse(t *testing.T) {
	c, _ := newTestCSV(t, []byte("a,1\n"), ReadWrite, RefreshAlways)
	if err := c.Set([]string{"b", "2"}); err != nil {
		t.Fatal(err)
	}
	loads := c.loads.Load()
	if got, _ := c.Get("b"); !reflect.DeepEqual(got, []string{"b", "2"}) {
		t.Fatalf("Get(b) = %q", got)
	}
	if n := c.loads.Load() - loads; n != 0 {
		t.Errorf("Get after the service's own write parsed the file %d times, want 0", n)
	}
}

func TestCSVAccessModes(t *testing.T) {
	tests := []struct {
		access  Access
		op      string
		wantErr string
	}{
		{access: ReadOnly, op: "get"},
		{access: ReadOnly, op: "set", wantErr: "csv service t is opened O_RDONLY: set is not allowed (access must be O_WRONLY or O_RDWR)"},
		{access: ReadOnly, op: "rm", wantErr: "csv service t is opened O_RDONLY: rm is not allowed (access must be O_WRONLY or O_RDWR)"},
		{access: WriteOnly, op: "get", wantErr: "csv service t is opened O_WRONLY: get is not allowed (access must be O_RDONLY or O_RDWR)"},
		{access: WriteOnly, op: "set"},
		{access: WriteOnly, op: "rm"},
		{access: ReadWrite, op: "get"},
		{access: ReadWrite, op: "set"},
		{access: ReadWrite, op: "rm"},
	}
	for _, tt := range tests {
		t.Run(tt.access.String()+"/"+tt.op, func(t *testing.T) {
			c, path := newTestCSV(t, []byte("a,1\n"), tt.access, RefreshAlways)
			var err error
			switch tt.op {
			case "get":
				_, err = c.Get("a")
			case "set":
				err = c.Set([]string{"b", "2"})
			case "rm":
				_, err = c.Remove("a")
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("%s: %v", tt.op, err)
				}
				return
			}
			var ae *AccessError
			if !errors.As(err, &ae) || err.Error() != tt.wantErr {
				t.Fatalf("%s: %v, want AccessError %q", tt.op, err, tt.wantErr)
			}
			if got := readFile(t, path); got != "a,1\n" {
				t.Errorf("a refused %s changed the file to %q", tt.op, got)
			}
		})
	}
}

func TestCSVCreatedOnFirstWrite(t *testing.T) {
	for _, access := range []Access{WriteOnly, ReadWrite} {
		t.Run(access.String(), func(t *testing.T) {
			c, path := newTestCSV(t, nil, access, RefreshAlways)
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("NewCSV created the file: %v", err)
			}
			if access.CanRead() {
				if got, err := c.Get("a"); err != nil || got != nil {
					t.Fatalf("Get on a table not written yet = %q, %v; want nothing", got, err)
				}
			}
			if err := c.Set([]string{"a", "1"}); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o640 {
				t.Errorf("new file mode %v, want 0640", fi.Mode().Perm())
			}
			if got := readFile(t, path); got != "a,1\n" {
				t.Errorf("file = %q", got)
			}
		})
	}
}

func TestCSVRewriteKeepsModeAndSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.csv")
	link := filepath.Join(dir, "link.csv")
	if err := os.WriteFile(real, []byte("a,1\n"), 0o604); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(real, 0o604); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.csv", link); err != nil {
		t.Fatal(err)
	}
	c, err := NewCSV("t", link, ReadWrite, RefreshAlways, ',')
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set([]string{"b", "2"}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the connector is no longer a symbolic link: %v, %v", fi, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o604 {
		t.Errorf("mode after rewrite %v, want 0604", fi.Mode().Perm())
	}
	if got := readFile(t, real); got != "a,1\nb,2\n" {
		t.Errorf("target = %q", got)
	}
}

// TestCSVAtomicRewrite runs writers against readers that look at the file
// directly (as another process would) and through Get: every version they
// see must be whole, i.e. a sequence of complete records, each line
// exactly as written.
func TestCSVAtomicRewrite(t *testing.T) {
	payload := strings.Repeat("x", 4000) // records large enough for a torn write to show
	var initial bytes.Buffer
	for i := range 50 {
		fmt.Fprintf(&initial, "base%d,%s\n", i, payload)
	}
	c, path := newTestCSV(t, initial.Bytes(), ReadWrite, RefreshAlways)
	checkLine := func(line string) error {
		k, v, ok := strings.Cut(line, ",")
		if !ok || v != payload || k == "" {
			return fmt.Errorf("torn line of %d bytes: %.40q", len(line), line)
		}
		return nil
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	errs := make(chan error, 8)
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				data, err := os.ReadFile(path)
				if err != nil {
					errs <- err
					return
				}
				if len(data) == 0 || data[len(data)-1] != '\n' {
					errs <- fmt.Errorf("file of %d bytes does not end with a complete record", len(data))
					return
				}
				for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
					if err := checkLine(line); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, err := c.Get("base0")
			if err != nil {
				errs <- err
				return
			}
			if len(r) != 2 || r[1] != payload {
				errs <- fmt.Errorf("Get(base0) = %d fields", len(r))
				return
			}
		}
	}()
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 25 {
				key := fmt.Sprintf("w%d-%d", w, i)
				if err := c.Set([]string{key, payload}); err != nil {
					errs <- err
					return
				}
				if i%2 == 1 {
					if _, err := c.Remove(key); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// No write was lost: 50 base records plus 13 kept per writer.
	data := readFile(t, path)
	if n := strings.Count(data, "\n"); n != 50+4*13 {
		t.Errorf("the file holds %d records, want %d", n, 50+4*13)
	}
	for w := range 4 {
		for i := range 25 {
			key := fmt.Sprintf("w%d-%d", w, i)
			r, err := c.Get(key)
			if err != nil {
				t.Fatal(err)
			}
			if kept := i%2 == 0; kept != (r != nil) {
				t.Errorf("Get(%s) = %d fields, kept=%v", key, len(r), kept)
			}
		}
	}
}

func TestNewCSVErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name      string
		path      string
		access    Access
		delimiter rune
		want      string
	}{
		{name: "missing read-only file", path: filepath.Join(dir, "none.csv"), access: ReadOnly, delimiter: ',',
			want: "opening connector: open " + filepath.Join(dir, "none.csv") + ": no such file or directory"},
		{name: "missing directory", path: filepath.Join(dir, "sub", "t.csv"), access: WriteOnly, delimiter: ',',
			want: "connector " + filepath.Join(dir, "sub", "t.csv") + ": directory " + filepath.Join(dir, "sub") + " does not exist"},
		{name: "directory", path: dir, access: ReadOnly, delimiter: ',', want: "connector " + dir + " is a directory"},
		{name: "quote delimiter", path: filepath.Join(dir, "x.csv"), access: ReadWrite, delimiter: '"', want: `invalid delimiter '"'`},
		{name: "newline delimiter", path: filepath.Join(dir, "x.csv"), access: ReadWrite, delimiter: '\n', want: `invalid delimiter '\n'`},
		{name: "no access", path: filepath.Join(dir, "x.csv"), access: 0, delimiter: ',', want: "invalid access mode Access(0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCSV("t", tt.path, tt.access, RefreshNo, tt.delimiter)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("NewCSV = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCSVLenientQuotes checks that stray quotes are read as text (as
// vSMTP's reader did) rather than failing the whole table.
func TestCSVLenientQuotes(t *testing.T) {
	c, _ := newTestCSV(t, []byte("a \"b\" c,1\n\"unterminated,2\n"), ReadOnly, RefreshNo)
	if got, err := c.Get(`a "b" c`); err != nil || !reflect.DeepEqual(got, []string{`a "b" c`, "1"}) {
		t.Errorf("Get = %q, %v", got, err)
	}
	if got, err := c.Get("unterminated,2"); err != nil || !reflect.DeepEqual(got, []string{"unterminated,2"}) {
		t.Errorf("Get = %q, %v", got, err)
	}
}

func TestCSVOtherDelimiters(t *testing.T) {
	for _, tt := range []struct {
		delim   rune
		content string
	}{
		{delim: ';', content: "a; 1 ;x\n"},
		{delim: '\t', content: "a\t 1 \tx\n"},
		{delim: '|', content: "a|1|x\n"},
	} {
		path := filepath.Join(t.TempDir(), "t.csv")
		if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := NewCSV("t", path, ReadWrite, RefreshAlways, tt.delim)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.Get("a"); err != nil || !reflect.DeepEqual(got, []string{"a", "1", "x"}) {
			t.Errorf("delimiter %q: Get(a) = %q, %v", tt.delim, got, err)
		}
		if err := c.Set([]string{"b", "2"}); err != nil {
			t.Fatal(err)
		}
		if got, want := readFile(t, path), tt.content+"b"+string(tt.delim)+"2\n"; got != want {
			t.Errorf("delimiter %q: file = %q, want %q", tt.delim, got, want)
		}
	}
}
