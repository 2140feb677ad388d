package object

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// Group is a v1 group object (type_of "group"): a list of objects and
// strings, possibly of mixed types and nested, compiled when it is built so
// that `x in group` is a few hash lookups. x is in the group when some
// element equals it by the objects' rules, when a range element holds it
// (an IP, or a string or range inside the range), or when a regex element
// matches it. A group iterates over its elements (`for x in group`) and,
// when it holds addresses, has the properties local_parts and domains.
type Group struct {
	elems []vsl.Value
	set   *set
}

// NewGroup builds a group of elems. A nested array becomes a nested group;
// maps, functions and () are refused, a group holding objects and strings.
func NewGroup(elems []vsl.Value) (*Group, error) {
	g := &Group{elems: make([]vsl.Value, len(elems)), set: &set{}}
	for i, e := range elems {
		switch e.Kind() {
		case vsl.KindArray:
			sub, err := NewGroup(e.AsArray().Elems)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			e = vsl.Host(sub)
		case vsl.KindMap, vsl.KindFn, vsl.KindUnit, vsl.KindRange:
			return nil, fmt.Errorf("element %d is a %s: a group holds objects and strings", i, e.TypeName())
		}
		g.elems[i] = e
		g.set.add(e)
	}
	g.set.finish()
	return g, nil
}

// TypeName returns "group".
func (g *Group) TypeName() string { return "group" }

// String renders the elements as an array: [john@doe.com, "text", ...].
func (g *Group) String() string { return renderList(g.elems, len(g.elems)) }

// Elems returns the elements, for `for x in group`.
func (g *Group) Elems() []vsl.Value { return g.elems }

// Len returns the number of elements.
func (g *Group) Len() int { return len(g.elems) }

// Contains answers `x in group`: whether some element equals x.
func (g *Group) Contains(x vsl.Value) (bool, error) {
	if found, indexed := g.set.has(x); indexed {
		return found, nil
	}
	return scanEqual(g.elems, x)
}

// Equal compares element-wise with another group or an array.
func (g *Group) Equal(other vsl.Value) (eq, ok bool) {
	var elems []vsl.Value
	switch {
	case other.Kind() == vsl.KindArray:
		elems = other.AsArray().Elems
	case other.Kind() == vsl.KindHost:
		o, isGroup := other.AsHost().(*Group)
		if !isGroup {
			return false, false
		}
		elems = o.elems
	default:
		return false, false
	}
	if len(elems) != len(g.elems) {
		return false, true
	}
	for i := range elems {
		if !vsl.Equal(g.elems[i], elems[i]) {
			return false, true
		}
	}
	return true, true
}

// Attr returns the properties local_parts and domains (arrays of the
// elements' local parts and domains, when all are addresses) and len.
func (g *Group) Attr(name string) (vsl.Value, bool, error) {
	return listAttr(name, len(g.elems), g.Elems)
}

// File is a file:TYPE object (type_of "file"): the values of a text file,
// one per non-empty line (lines starting with '#' are comments), all of
// type TYPE. It is read and compiled once, when it is loaded; `x in file`
// is then a hash lookup for names and addresses and a binary search for
// ranges, with the membership rules of a group. A file also iterates over
// its values and has the properties of a group.
type File struct {
	// Path is the file's path, Type the type of its values (e.g. "fqdn").
	Path, Type string

	entries []string // the values' texts, in file order
	set     *set

	once  sync.Once
	elems []vsl.Value // built on first iteration: most files are only searched
}

// isFileType reports whether a file:TYPE list may hold values of type typ.
func isFileType(typ string) bool {
	switch typ {
	case "ip4", "ip6", "rg4", "rg6", "fqdn", "address", "ident", "identifier", "string", "regex":
		return true
	}
	return false
}

// LoadFile reads the list of values of type typ in the file at path. A
// value that does not parse is an error naming the file, the line and the
// value.
func LoadFile(path, typ string) (*File, error) {
	if !isFileType(typ) {
		return nil, fmt.Errorf("unknown file content type %q (expected ip4, ip6, rg4, rg6, fqdn, address, ident, identifier, string or regex)", typ)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named below
		}
		return nil, fmt.Errorf("file:%s list %s: %w", typ, path, err)
	}
	lines := bytes.Count(data, []byte{'\n'}) + 1
	f := &File{Path: path, Type: typ, set: &set{hint: lines}, entries: make([]string, 0, lines)}
	// One string for the whole file: every entry and most index keys are
	// substrings of it.
	rest := string(data)
	for line := 1; rest != ""; line++ {
		text := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			text, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		text = strings.TrimSpace(text)
		if text == "" || text[0] == '#' {
			continue
		}
		if err := f.set.addTyped(typ, text); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		f.entries = append(f.entries, text)
	}
	f.set.finish()
	f.entries = slices.Clip(f.entries)
	return f, nil
}

// TypeName returns "file".
func (f *File) TypeName() string { return "file" }

// String renders the first values as an array, with the count of the
// others: [a.example, b.example, ... (999998 more)].
func (f *File) String() string {
	n := min(len(f.entries), printMax)
	vals := make([]vsl.Value, n)
	for i := range vals {
		vals[i] = f.entryValue(f.entries[i])
	}
	return renderList(vals, len(f.entries))
}

// Len returns the number of values.
func (f *File) Len() int { return len(f.entries) }

// Elems returns the values, for `for x in file`. They are built on the
// first call.
func (f *File) Elems() []vsl.Value {
	f.once.Do(func() {
		f.elems = make([]vsl.Value, len(f.entries))
		for i, e := range f.entries {
			f.elems[i] = f.entryValue(e)
		}
	})
	return f.elems
}

// entryValue builds the value of one entry, which parsed when the file
// was loaded.
func (f *File) entryValue(text string) vsl.Value {
	v, err := Parse(f.Type, text)
	if err != nil { // cannot happen: every entry was checked by LoadFile
		return vsl.String(text)
	}
	return v
}

// Contains answers `x in file`: whether some value equals x.
func (f *File) Contains(x vsl.Value) (bool, error) {
	if found, indexed := f.set.has(x); indexed {
		return found, nil
	}
	return scanEqual(f.Elems(), x)
}

// Attr returns the properties local_parts and domains (for a list of
// addresses) and len.
func (f *File) Attr(name string) (vsl.Value, bool, error) {
	return listAttr(name, len(f.entries), f.Elems)
}

// scanEqual compares x with every element, looking into nested groups and
// files, for the values the sets do not index.
func scanEqual(elems []vsl.Value, x vsl.Value) (bool, error) {
	for _, e := range elems {
		switch h := e.AsHost().(type) {
		case *Group:
			if ok, err := h.Contains(x); ok || err != nil {
				return ok, err
			}
			continue
		case *File:
			if ok, err := h.Contains(x); ok || err != nil {
				return ok, err
			}
			continue
		}
		if vsl.Equal(x, e) {
			return true, nil
		}
	}
	return false, nil
}

// printMax is how many values of a list String shows.
const printMax = 32

// renderList renders vals as an array, noting how many of total are not
// shown.
func renderList(vals []vsl.Value, total int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(vsl.Debug(v))
	}
	if more := total - len(vals); more > 0 {
		b.WriteString(", ... (")
		b.WriteString(strconv.Itoa(more))
		b.WriteString(" more)")
	}
	b.WriteByte(']')
	return b.String()
}

// listAttr implements the properties of groups and files of n values;
// elems is only called for the properties that need the values.
func listAttr(name string, n int, elems func() []vsl.Value) (vsl.Value, bool, error) {
	switch name {
	case "len":
		return vsl.Int(int64(n)), true, nil
	case "local_parts", "domains":
		v, err := addressParts(name, elems())
		return v, true, err
	}
	return vsl.Value{}, false, nil
}

// addressParts returns the local parts (strings) or the domains (fqdn
// objects) of a list of addresses: address objects, or strings holding an
// address. Its errors do not repeat the property's name, which the runtime
// adds.
func addressParts(name string, elems []vsl.Value) (vsl.Value, error) {
	out := make([]vsl.Value, len(elems))
	for i, e := range elems {
		var a *Address
		switch e.Kind() {
		case vsl.KindHost:
			a, _ = e.AsHost().(*Address)
		case vsl.KindString:
			if local, domain, ok := splitAddress(e.AsString()); ok {
				a = newAddress(local, domain)
			}
		}
		if a == nil {
			return vsl.Value{}, fmt.Errorf("element %d is a %s, not an address", i, e.TypeName())
		}
		if name == "local_parts" {
			out[i] = vsl.String(a.Local)
		} else {
			out[i], _, _ = a.Attr("domain")
		}
	}
	return vsl.NewArray(out), nil
}
