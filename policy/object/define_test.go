package object

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// TestFileCache checks that file() reads a list once, and again when the
// file changes.
func TestFileCache(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "list.txt", "a.example\n")
	fc := &fileCache{files: make(map[fileKey]*cachedFile)}
	v1, err := fc.load(path, "fqdn")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := fc.load(path, "fqdn")
	if err != nil {
		t.Fatal(err)
	}
	if v1.AsHost() != v2.AsHost() {
		t.Error("an unchanged file was read again")
	}
	if v3, err := fc.load(path, "string"); err != nil || v3.AsHost() == v1.AsHost() {
		t.Errorf("another type shares the cached list: %v", err)
	}

	if err := os.WriteFile(path, []byte("a.example\nb.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	v4, err := fc.load(path, "fqdn")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := v4.AsHost().(*File).Contains(vsl.String("b.example")); !ok {
		t.Errorf("a changed file was not read again: %s", vsl.Debug(v4))
	}

	for i := range maxCachedFiles + 10 {
		p := writeFile(t, dir, "l"+strings.Repeat("x", i)+".txt", "a.example\n")
		if _, err := fc.load(p, "fqdn"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(fc.files); n > maxCachedFiles {
		t.Errorf("the cache holds %d lists, more than %d", n, maxCachedFiles)
	}
	if _, err := fc.load(filepath.Join(dir, "gone.txt"), "fqdn"); err == nil || !strings.Contains(err.Error(), "gone.txt: no such file") {
		t.Errorf("missing file: error %v", err)
	}
}

// TestDefineNames checks that Define registers every name it documents.
func TestDefineNames(t *testing.T) {
	env := vsl.NewEnv()
	Define(env)
	for _, name := range []string{
		"ip4", "ip6", "rg4", "rg6", "fqdn", "address", "regex", "identifier", "file", "code",
		"local_parts", "domains",
		"code::c554_7_1", "code::c451_7_1", "code::c550_7_20", "code::c550_7_21", "code::c550_7_22",
		"code::c550_7_23", "code::c550_7_24", "code::c550_7_25", "code::c550_7_26", "code::c550_7_27",
		"code::c500_7_26", "code::c556_1_10", "code::c451_3_0", "code::c550_1_1",
	} {
		if env.Lookup(name) == nil {
			t.Errorf("function %s is not defined", name)
		}
	}
	for _, name := range []string{
		"code554_7_1", "code550_7_20", "code550_7_21", "code550_7_22", "code550_7_23", "code550_7_24",
		"code550_7_25", "code550_7_26", "code550_7_27", "code451_7_24", "code556_1_10", "code_greylist",
		"code_multi_destination", "code_unknown_account", "net_10", "net_172", "net_192", "non_routable_net",
	} {
		if _, ok := env.Const(name); !ok {
			t.Errorf("constant %s is not defined", name)
		}
	}
}
