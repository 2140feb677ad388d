package smtpd

import (
	"strings"

	"github.com/vsl-milter/vsl-milter/policy"
)

// parsePath parses the argument of MAIL ("FROM:<path> params") or RCPT
// ("TO:<path> params"), prefix being "FROM:" or "TO:". It is lenient where
// clients commonly are sloppy (a space after the colon, a path without
// angle brackets) and drops a source route (RFC 5321 §4.1.1.3). The null
// path <> gives an address with Null set. The parameters are returned as
// written ("SIZE=1000").
func parsePath(arg, prefix string) (addr policy.MailAddr, params []string, ok bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return addr, nil, false
	}
	rest := strings.TrimLeft(arg[len(prefix):], " ")
	var path string
	if strings.HasPrefix(rest, "<") {
		end := closingBracket(rest)
		if end < 0 {
			return addr, nil, false
		}
		path, rest = rest[1:end], rest[end+1:]
		if rest != "" && rest[0] != ' ' {
			return addr, nil, false
		}
	} else {
		// Without brackets, only a mailbox: not <>, not a bare local part.
		path, rest, _ = strings.Cut(rest, " ")
		if !strings.Contains(path, "@") {
			return addr, nil, false
		}
	}
	if strings.HasPrefix(path, "@") { // a source route: @a,@b:user@host
		_, after, found := strings.Cut(path, ":")
		if !found {
			return addr, nil, false
		}
		path = after
	}
	if !cleanPath(path) {
		return addr, nil, false
	}
	if path == "" {
		return policy.MailAddr{Null: true}, strings.Fields(rest), true
	}
	addr = policy.ParseMailAddr(path)
	if addr.Local == "" || strings.HasSuffix(path, "@") {
		return addr, nil, false
	}
	return addr, strings.Fields(rest), true
}

// closingBracket returns the index of the '>' closing the path that s
// starts, skipping quoted strings ("a>b"@host), or -1.
func closingBracket(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case '>':
			if !quoted {
				return i
			}
		}
	}
	return -1
}

// cleanPath reports whether a path holds no control character, and no
// space outside a quoted string.
func cleanPath(s string) bool {
	quoted := false
	for i := 0; i < len(s); i++ {
		if ch := s[i]; ch < ' ' || ch == 0x7f {
			return false
		}
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ':
			if !quoted {
				return false
			}
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		}
	}
	return true
}
