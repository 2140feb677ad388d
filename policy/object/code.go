package object

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// Code is an SMTP reply code object (type_of "code"): a reply code, an
// optional enhanced status code (RFC 3463; "" for none) and a text. Its
// properties are code (an integer), enhanced and text (strings).
type Code struct {
	Code     int
	Enhanced string
	Text     string
}

// ParseCode parses a reply such as "451 4.7.1 try later", "554 text" or
// "250": a 2xx to 5xx code, then optionally an enhanced code class.subject.detail,
// then the text. A trailing CRLF is ignored.
func ParseCode(s string) (*Code, error) {
	c, err := parseCode(s)
	if err != nil {
		return nil, &ParseError{Type: "code", Value: s, Err: err}
	}
	return c, nil
}

func parseCode(s string) (*Code, error) {
	t := strings.TrimSpace(s)
	if len(t) < 3 {
		return nil, errors.New("expected a three-digit reply code")
	}
	n, err := strconv.Atoi(t[:3])
	if err != nil || t[0] == '+' || t[0] == '-' {
		return nil, errors.New("expected a three-digit reply code")
	}
	rest := t[3:]
	if rest != "" {
		if rest[0] != ' ' {
			return nil, fmt.Errorf("expected a space after the reply code %s", t[:3])
		}
		rest = strings.TrimLeft(rest, " ")
	}
	c := &Code{Code: n}
	if word, text, _ := strings.Cut(rest, " "); looksEnhanced(word) {
		c.Enhanced, c.Text = word, strings.TrimLeft(text, " ")
	} else {
		c.Text = rest
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// looksEnhanced reports whether s has the shape of an enhanced status code
// (digits and two dots), so that a malformed one is reported as such rather
// than taken as text.
func looksEnhanced(s string) bool {
	if strings.Count(s, ".") != 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// check validates the parts of a code.
func (c *Code) check() error {
	if c.Code < 200 || c.Code > 599 {
		return fmt.Errorf("reply code %d is not between 200 and 599", c.Code)
	}
	if c.Enhanced != "" {
		if err := checkEnhanced(c.Enhanced); err != nil {
			return err
		}
	}
	if strings.ContainsAny(c.Text, "\r\n") {
		return errors.New("the reply text must be a single line")
	}
	return nil
}

// checkEnhanced validates class.subject.detail: class 2, 4 or 5, subject
// and detail of one to three digits.
func checkEnhanced(s string) error {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || strings.IndexByte("245", parts[0][0]) < 0 {
		return fmt.Errorf("enhanced code %q is not class.subject.detail with class 2, 4 or 5", s)
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return fmt.Errorf("enhanced code %q: subject and detail are 1 to 3 digits", s)
		}
	}
	return nil
}

// ToCode reads a code from a code object, a string such as
// "451 4.7.1 try later", or a v1 map #{code: 550, enhanced: "5.7.1", text:
// "..."} (enhanced and text optional; #{value: "550 ..."} also works).
func ToCode(v vsl.Value) (*Code, error) {
	switch v.Kind() {
	case vsl.KindString:
		return ParseCode(v.AsString())
	case vsl.KindHost:
		if c, ok := v.AsHost().(*Code); ok {
			return c, nil
		}
	case vsl.KindMap:
		return codeFromMap(v.AsMap().M)
	}
	return nil, fmt.Errorf(`expected a code (a code object, a string such as "550 5.7.1 text" or a map #{code, enhanced, text}), got %s`, v.TypeName())
}

func codeFromMap(m map[string]vsl.Value) (*Code, error) {
	if s, ok := m["value"]; ok && len(m) == 1 {
		if s.Kind() != vsl.KindString {
			return nil, fmt.Errorf("code map: 'value' must be a string, got %s", s.TypeName())
		}
		return ParseCode(s.AsString())
	}
	c := &Code{}
	for k, v := range m {
		switch k {
		case "code":
			if v.Kind() != vsl.KindInt {
				return nil, fmt.Errorf("code map: 'code' must be an integer, got %s", v.TypeName())
			}
			c.Code = int(v.AsInt())
			if int64(c.Code) != v.AsInt() {
				return nil, fmt.Errorf("code map: reply code %d out of range", v.AsInt())
			}
		case "enhanced", "text":
			if v.Kind() != vsl.KindString {
				return nil, fmt.Errorf("code map: '%s' must be a string, got %s", k, v.TypeName())
			}
			if k == "enhanced" {
				c.Enhanced = v.AsString()
			} else {
				c.Text = v.AsString()
			}
		default:
			return nil, fmt.Errorf("code map: unknown key '%s' (expected code, enhanced, text)", k)
		}
	}
	if _, ok := m["code"]; !ok {
		return nil, errors.New("code map: missing 'code'")
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("code map: %w", err)
	}
	return c, nil
}

// TypeName returns "code".
func (c *Code) TypeName() string { return "code" }

// String renders the reply: "550 5.7.1 text", without the enhanced code or
// the text when they are empty.
func (c *Code) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(c.Code))
	if c.Enhanced != "" {
		b.WriteByte(' ')
		b.WriteString(c.Enhanced)
	}
	if c.Text != "" {
		b.WriteByte(' ')
		b.WriteString(c.Text)
	}
	return b.String()
}

// Equal compares with a code or a string holding the same reply, or
// matches a regex.
func (c *Code) Equal(other vsl.Value) (eq, ok bool) {
	switch other.Kind() {
	case vsl.KindString:
		o, err := parseCode(other.AsString())
		return err == nil && *o == *c, true
	case vsl.KindHost:
		if o, isCode := other.AsHost().(*Code); isCode {
			return *o == *c, true
		}
		return matchesRegex(c, other)
	}
	return false, false
}

// Attr returns the properties code, enhanced and text.
func (c *Code) Attr(name string) (vsl.Value, bool, error) {
	switch name {
	case "code":
		return vsl.Int(int64(c.Code)), true, nil
	case "enhanced":
		return vsl.String(c.Enhanced), true, nil
	case "text":
		return vsl.String(c.Text), true, nil
	}
	return vsl.Value{}, false, nil
}

// predefinedCode is one of vSMTP's predefined replies, by its v1 constant
// name and its v2 function name in the code:: namespace.
type predefinedCode struct {
	v1, v2 string
	code   Code
}

// predefinedCodes returns vSMTP's predefined replies (v1 constants, v2
// functions), with vSMTP's texts.
func predefinedCodes() []predefinedCode {
	return []predefinedCode{
		{"code554_7_1", "c554_7_1", Code{554, "5.7.1", "Relay access denied"}},
		{"code550_7_20", "c550_7_20", Code{550, "5.7.20", "No passing DKIM signature found"}},
		{"code550_7_21", "c550_7_21", Code{550, "5.7.21", "No acceptable DKIM signature found"}},
		{"code550_7_22", "c550_7_22", Code{550, "5.7.22", "No valid author-matched DKIM signature found"}},
		{"code550_7_23", "c550_7_23", Code{550, "5.7.23", "SPF validation failed"}},
		{"code550_7_24", "c550_7_24", Code{550, "5.7.24", "SPF validation error"}},
		{"code550_7_25", "c550_7_25", Code{550, "5.7.25", "Reverse DNS validation failed"}},
		// vSMTP's code550_7_26 and c500_7_26 are both 500 5.7.26; c550_7_26
		// is ours, for the range c550_7_20…c550_7_27 SEMANTICS names.
		{"code550_7_26", "c550_7_26", Code{500, "5.7.26", "Multiple authentication checks failed"}},
		{"", "c500_7_26", Code{500, "5.7.26", "Multiple authentication checks failed"}},
		{"code550_7_27", "c550_7_27", Code{550, "5.7.27", "Sender address has null MX"}},
		// vSMTP's v1 code451_7_24 said 451 5.7.24; the enhanced class must
		// agree with the reply code (RFC 3463), so ours is 4.7.24.
		{"code451_7_24", "c451_7_24", Code{451, "4.7.24", "SPF validation error"}},
		{"code556_1_10", "c556_1_10", Code{556, "5.1.10", "Recipient address has null MX"}},
		{"code_greylist", "c451_7_1", Code{451, "4.7.1", "Sender is not authorized. Please try again."}},
		{"code_multi_destination", "c451_3_0", Code{451, "4.3.0", "Multiple destination domains per transaction is unsupported. Please try again."}},
		{"code_unknown_account", "c550_1_1", Code{550, "5.1.1", "The email account that you tried to reach does not exist. Please try again."}},
	}
}

// Predefined returns vSMTP's predefined reply named by its v1 constant
// name (code554_7_1, code_greylist, ...) or its v2 function name (c554_7_1,
// c451_7_1, ...).
func Predefined(name string) (*Code, bool) {
	for _, p := range predefinedCodes() {
		if p.v1 == name || p.v2 == name {
			return &p.code, true
		}
	}
	return nil, false
}
