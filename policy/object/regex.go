package object

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// Regex is a regular expression object (type_of "regex"), in RE2 syntax. A
// regex equals a string, or the text of another object, that it matches
// anywhere unless the pattern is anchored (^...$); `x in regex` means the
// same.
type Regex struct {
	Re *regexp.Regexp
}

// ParseRegex compiles a regex object.
func ParseRegex(s string) (*Regex, error) {
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, &ParseError{Type: "regex", Value: s, Err: regexReason(err)}
	}
	return &Regex{Re: re}, nil
}

// regexReason drops the "error parsing regexp: " prefix of regexp's errors.
func regexReason(err error) error {
	if msg, ok := strings.CutPrefix(err.Error(), "error parsing regexp: "); ok {
		return errors.New(msg)
	}
	return err
}

// TypeName returns "regex".
func (r *Regex) TypeName() string { return "regex" }

// String returns the pattern.
func (r *Regex) String() string { return r.Re.String() }

// Equal matches a string or the text of another object; two regexes are
// equal when their patterns are.
func (r *Regex) Equal(other vsl.Value) (eq, ok bool) {
	switch other.Kind() {
	case vsl.KindString:
		return r.Re.MatchString(other.AsString()), true
	case vsl.KindHost:
		if o, isRe := other.AsHost().(*Regex); isRe {
			return o.Re.String() == r.Re.String(), true
		}
		switch h := other.AsHost().(type) {
		case *Address, *FQDN, *Ident, *IP, *Range, *Code:
			return r.Re.MatchString(h.String()), true
		}
	}
	return false, false
}

// Contains answers `x in regex`: whether the regex matches x, a string or
// an object's text.
func (r *Regex) Contains(x vsl.Value) (bool, error) {
	if _, isRe := x.AsHost().(*Regex); !isRe {
		if eq, ok := r.Equal(x); ok {
			return eq, nil
		}
	}
	return false, fmt.Errorf("cannot match a regex against a %s", x.TypeName())
}
