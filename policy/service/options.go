package service

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// options reads the parameter map of a service declaration, key by key,
// and reports what is missing, mistyped or unknown.
type options struct {
	prefix string // "" at the top, "delegator." in a nested map
	m      map[string]vsl.Value
	used   map[string]bool
}

// newOptions checks that v is a map. what names the map in errors.
func newOptions(v vsl.Value, what string) (*options, error) {
	m := v.AsMap()
	if m == nil {
		return nil, fmt.Errorf("%s must be a map #{...}, not %s", what, v.TypeName())
	}
	return &options{m: m.M, used: make(map[string]bool)}, nil
}

// get returns the value of key; () counts as absent.
func (o *options) get(key string) (vsl.Value, bool) {
	o.used[key] = true
	v, ok := o.m[key]
	if !ok || v.IsUnit() {
		return vsl.Value{}, false
	}
	return v, true
}

func (o *options) missing(key string) error {
	return fmt.Errorf("missing key %q", o.prefix+key)
}

// str returns a string parameter; required says whether absence is an error.
func (o *options) str(key string, required bool) (string, bool, error) {
	v, ok := o.get(key)
	if !ok {
		if required {
			return "", false, o.missing(key)
		}
		return "", false, nil
	}
	if v.Kind() != vsl.KindString {
		return "", false, fmt.Errorf("key %q must be a string, not %s", o.prefix+key, v.TypeName())
	}
	return v.AsString(), true, nil
}

// strs returns an array-of-strings parameter (nil, false when absent).
func (o *options) strs(key string) ([]string, bool, error) {
	v, ok := o.get(key)
	if !ok {
		return nil, false, nil
	}
	out, err := stringArray(v)
	if err != nil {
		return nil, false, fmt.Errorf("key %q: %w", o.prefix+key, err)
	}
	return out, true, nil
}

// duration returns a positive duration parameter, or def when it is absent
// and def is not 0.
func (o *options) duration(key string, def time.Duration) (time.Duration, error) {
	s, ok, err := o.str(key, def == 0)
	if err != nil || !ok {
		return def, err
	}
	d, err := ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("key %q: %w", o.prefix+key, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("key %q: the duration must be positive, not %q", o.prefix+key, s)
	}
	return d, nil
}

// sub returns the nested map under key.
func (o *options) sub(key string) (*options, error) {
	v, ok := o.get(key)
	if !ok {
		return nil, o.missing(key)
	}
	so, err := newOptions(v, fmt.Sprintf("key %q", o.prefix+key))
	if err != nil {
		return nil, err
	}
	so.prefix = o.prefix + key + "."
	return so, nil
}

// done reports keys that were never asked for: a misspelt "user" must not
// silently run a command as root.
func (o *options) done() error {
	var unknown, known []string
	for k := range o.m {
		if !o.used[k] {
			unknown = append(unknown, o.prefix+k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	for k := range o.used {
		known = append(known, k)
	}
	sort.Strings(unknown)
	sort.Strings(known)
	what := "key"
	if len(unknown) > 1 {
		what = "keys"
	}
	return fmt.Errorf("unknown %s %s (expected %s)", what, quoteList(unknown), strings.Join(known, ", "))
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// stringArray converts an array of strings.
func stringArray(v vsl.Value) ([]string, error) {
	a := v.AsArray()
	if a == nil {
		return nil, fmt.Errorf("must be an array of strings, not %s", v.TypeName())
	}
	out := make([]string, len(a.Elems))
	for i, e := range a.Elems {
		if e.Kind() != vsl.KindString {
			return nil, fmt.Errorf("element %d must be a string, not %s", i, e.TypeName())
		}
		out[i] = e.AsString()
	}
	return out, nil
}
