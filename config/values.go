package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The converters below turn a decoded TOML value into a typed field. They
// check the type and the spelling of a value; ranges and relations between
// settings are checked later, in validate. An error says what was expected;
// the decoder adds the key, the value and the position.

func toString(raw any) (string, error) {
	s, ok := raw.(string)
	if !ok {
		return "", errors.New("expected a string")
	}
	return s, nil
}

func toBool(raw any) (bool, error) {
	b, ok := raw.(bool)
	if !ok {
		return false, errors.New("expected true or false")
	}
	return b, nil
}

func toInt(raw any) (int, error) {
	n, ok := raw.(int64)
	if !ok {
		return 0, errors.New("expected an integer")
	}
	if n < math.MinInt || n > math.MaxInt {
		return 0, errors.New("expected a smaller integer")
	}
	return int(n), nil
}

func toInt64(raw any) (int64, error) {
	n, ok := raw.(int64)
	if !ok {
		return 0, errors.New("expected an integer")
	}
	return n, nil
}

func toDuration(raw any) (time.Duration, error) {
	const expect = `expected a duration such as "200ms", "5s", "5m", "1h", "1d" or "1h 30m"`
	s, ok := raw.(string)
	if !ok {
		return 0, errors.New(expect)
	}
	d, err := parseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s (%v)", expect, err)
	}
	return d, nil
}

func toStringList(raw any) ([]string, error) {
	if s, ok := raw.(string); ok { // a lone string is a list of one
		return []string{s}, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, errors.New("expected a list of strings")
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("expected a list of strings, found %s in it", render(x))
		}
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// toAddrList reads a [server.interfaces] list: IP literals with a port, as
// vSMTP parsed them (no host names).
func toAddrList(raw any) ([]netip.AddrPort, error) {
	list, err := toStringList(raw)
	if err != nil {
		return nil, err
	}
	out := make([]netip.AddrPort, 0, len(list))
	for _, s := range list {
		ap, err := netip.ParseAddrPort(s)
		if err != nil || ap.Port() == 0 {
			return nil, fmt.Errorf(`%q is not an IP address and port such as "127.0.0.1:25" or "[::1]:25"`, s)
		}
		out = append(out, ap)
	}
	return out, nil
}

// oneOf returns a converter accepting the given words, case-insensitively,
// and returning them as spelled here.
func oneOf[T ~string](words ...T) func(any) (T, error) {
	return func(raw any) (T, error) {
		if s, ok := raw.(string); ok {
			for _, w := range words {
				if strings.EqualFold(s, string(w)) {
					return w, nil
				}
			}
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = strconv.Quote(string(w))
		}
		return "", fmt.Errorf("expected one of %s", strings.Join(quoted, ", "))
	}
}

// toLevel reads a log level of vSMTP's sections (the log crate's filters).
func toLevel(raw any) (string, error) {
	return oneOf("trace", "debug", "info", "warn", "error", "off")(raw)
}

// toOwnLevel reads [log] level.
func toOwnLevel(raw any) (string, error) {
	return oneOf("trace", "debug", "info", "warn", "error")(raw)
}

// levelSpec is a server.logs.level value: a default level and per-target
// levels.
type levelSpec struct {
	def string
	per map[string]string
}

// toLevelSpec reads server.logs.level in any of vSMTP's spellings: "warn";
// a table { default = "warn", receiver = "info" }; or a list of tracing
// directives ["warn", "vsmtp_server::receiver=info"].
func toLevelSpec(raw any) (levelSpec, error) {
	const expect = `expected a level such as "warn", a table such as { default = "warn" }, or a list such as ["warn", "receiver=info"]`
	var spec levelSpec
	set := func(target string, level any) error {
		l, err := toLevel(level)
		if err != nil {
			return fmt.Errorf("%s: %v", target, err)
		}
		if target == "default" {
			spec.def = l
			return nil
		}
		if spec.per == nil {
			spec.per = make(map[string]string)
		}
		spec.per[target] = l
		return nil
	}
	switch v := raw.(type) {
	case string:
		return spec, set("default", v)
	case map[string]any:
		for _, target := range sortedKeys(v) {
			if err := set(target, v[target]); err != nil {
				return spec, err
			}
		}
		return spec, nil
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return spec, errors.New(expect)
			}
			target, level, found := strings.Cut(s, "=")
			if !found {
				target, level = "default", s
			}
			if err := set(target, level); err != nil {
				return spec, err
			}
		}
		return spec, nil
	}
	return spec, errors.New(expect)
}

// toProtocolVersions reads server.tls.protocol_version: a list, one version,
// or "^v" / ">=v" for v and every later version.
func toProtocolVersions(raw any) ([]string, error) {
	all := []string{"TLSv1.2", "TLSv1.3"}
	const expect = `expected "TLSv1.2", "TLSv1.3" (or "0x0303", "0x0304"), a list of them, or "^TLSv1.2" for that version and later`
	version := func(s string) (int, bool) {
		switch s {
		case "TLSv1.2", "TLSv1_2", "0x0303":
			return 0, true
		case "TLSv1.3", "TLSv1_3", "0x0304":
			return 1, true
		}
		return 0, false
	}
	if s, ok := raw.(string); ok {
		if min, found := strings.CutPrefix(s, ">="); found {
			s = "^" + min
		}
		if min, found := strings.CutPrefix(s, "^"); found {
			i, ok := version(min)
			if !ok {
				return nil, errors.New(expect)
			}
			return append([]string(nil), all[i:]...), nil
		}
		raw = []any{s}
	}
	list, ok := raw.([]any)
	if !ok || len(list) == 0 {
		return nil, errors.New(expect)
	}
	var out []string
	for _, x := range list {
		s, _ := x.(string)
		i, ok := version(s)
		if !ok {
			return nil, fmt.Errorf("%s is not a TLS version; %s", render(x), expect)
		}
		out = appendNew(out, all[i])
	}
	return out, nil
}

// cipherSuiteName maps the accepted spellings of a cipher suite to its IANA
// name: rustls's (which vSMTP used) and IANA's own.
func cipherSuiteName(s string) (string, bool) {
	switch s {
	case "TLS13_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384":
		return "TLS_AES_256_GCM_SHA384", true
	case "TLS13_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256":
		return "TLS_AES_128_GCM_SHA256", true
	case "TLS13_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256":
		return "TLS_CHACHA20_POLY1305_SHA256", true
	case "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
		"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
		"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
		"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
		"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256":
		return s, true
	}
	return "", false
}

// defaultCipherSuites is rustls's default list, which vSMTP used.
func defaultCipherSuites() []string {
	return []string{
		"TLS_AES_256_GCM_SHA384",
		"TLS_AES_128_GCM_SHA256",
		"TLS_CHACHA20_POLY1305_SHA256",
		"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
		"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
		"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
		"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
		"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
	}
}

func toCipherSuites(raw any) ([]string, error) {
	list, err := toStringList(raw)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range list {
		name, ok := cipherSuiteName(s)
		if !ok {
			return nil, fmt.Errorf("%q is not a supported cipher suite; expected some of %s", s, strings.Join(defaultCipherSuites(), ", "))
		}
		out = appendNew(out, name)
	}
	return out, nil
}

func toMechanisms(raw any) ([]string, error) {
	list, err := toStringList(raw)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range list {
		m := strings.ToUpper(s)
		switch m {
		case "PLAIN", "LOGIN", "CRAM-MD5", "ANONYMOUS":
			out = appendNew(out, m)
		default:
			return nil, fmt.Errorf(`%q is not a SASL mechanism; expected some of "PLAIN", "LOGIN", "CRAM-MD5", "ANONYMOUS"`, s)
		}
	}
	return out, nil
}

// replyNames lists vSMTP v1's reply names (vsmtp-common's CodeID), the keys
// of [server.smtp.codes].
func replyNames() []string {
	return []string{
		"AlreadyUnderTLS", "AuthClientCanceled", "AuthClientMustNotStart", "AuthErrorDecode64",
		"AuthInvalidCredentials", "AuthMechNotSupported", "AuthMechanismMustBeEncrypted", "AuthRequired",
		"AuthSucceeded", "BadSequence", "Closing", "ConnectionMaxReached", "DataStart", "Denied",
		"EhloPain", "EhloSecured", "Failure", "Greetings", "Helo", "Help", "MessageSizeExceeded", "Ok",
		"ParameterUnimplemented", "SyntaxErrorParams", "Timeout", "TlsGoAhead", "TlsNotAvailable",
		"TlsRequired", "TooManyError", "TooManyRecipients", "Unimplemented", "UnrecognizedCommand",
		"TooManyHops", // ours: vSMTP v1 had no loop detection
	}
}

// toReply reads one [server.smtp.codes] entry: "554 5.7.1 text" (a trailing
// CRLF is dropped) or { code = 554, enhanced = "5.7.1", text = "text" }.
func toReply(raw any) (Reply, error) {
	const expect = `expected a reply such as "554 5.7.1 go away" or a table such as { code = 554, enhanced = "5.7.1", text = "go away" }`
	var r Reply
	switch v := raw.(type) {
	case string:
		s := strings.TrimRight(v, "\r\n")
		if len(s) < 3 {
			return r, errors.New(expect)
		}
		code, err := strconv.Atoi(s[:3])
		if err != nil || len(s) > 3 && s[3] != ' ' && s[3] != '-' {
			return r, errors.New(expect)
		}
		r.Code = code
		rest := ""
		if len(s) > 3 {
			rest = s[4:]
		}
		if enh, text, _ := strings.Cut(rest, " "); isEnhancedCode(enh) {
			r.Enhanced, rest = enh, text
		}
		r.Text = rest
	case map[string]any:
		for _, k := range sortedKeys(v) {
			var err error
			switch k {
			case "code":
				r.Code, err = toInt(v[k])
			case "enhanced":
				r.Enhanced, err = toString(v[k])
				if err == nil && r.Enhanced != "" && !isEnhancedCode(r.Enhanced) {
					err = errors.New(`expected an enhanced status code such as "5.7.1"`)
				}
			case "text":
				r.Text, err = toString(v[k])
			default:
				err = errors.New(`unknown key; expected code, enhanced and text`)
			}
			if err != nil {
				return r, fmt.Errorf("%s: %v", k, err)
			}
		}
		if r.Code == 0 {
			return r, errors.New("code: missing; " + expect)
		}
	default:
		return r, errors.New(expect)
	}
	if r.Code < 200 || r.Code > 599 {
		return r, fmt.Errorf("reply code %d is not from 200 to 599", r.Code)
	}
	return r, nil
}

// isEnhancedCode reports whether s looks like an RFC 3463 status code:
// class.subject.detail with class 2, 4 or 5.
func isEnhancedCode(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != "2" && parts[0] != "4" && parts[0] != "5" {
		return false
	}
	for _, p := range parts[1:] {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 999 || p[0] == '+' {
			return false
		}
	}
	return true
}

// toSocketMode reads milter.socket_mode, an octal string. Integers are
// refused: 660 and 0o660 are different numbers, and the intent is unclear.
func toSocketMode(raw any) (fs.FileMode, error) {
	const expect = `expected permission bits as an octal string such as "0660"`
	s, ok := raw.(string)
	if !ok {
		return 0, errors.New(expect)
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || n > 0o777 {
		return 0, errors.New(expect)
	}
	return fs.FileMode(n), nil
}

// toServerKey reads the top-level server key when it is not a table: the
// flat form's log level.
func toServerKey(raw any) (string, error) {
	if _, ok := raw.(string); !ok {
		return "", errors.New(`expected a [server] table, or in the flat form a log level such as "warn"`)
	}
	return toLevel(raw)
}

// appendNew appends s unless list already holds it.
func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
