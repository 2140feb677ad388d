// Package dryrun runs one scripted SMTP session through a rule set without
// sending or storing any mail: the engine of the `vsl-milter test` command
// and of the golden session tests. It reads the plain-text session format,
// drives a policy.Session exactly as a front end would, and reports what
// the MTA would have been told and what the message would have become.
//
// It knows nothing of the milter or SMTP wire protocols.
package dryrun

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vsl-milter/vsl-milter/policy"
)

// Script is a parsed session file.
type Script struct {
	Name     string
	Client   netip.AddrPort
	Helo     string
	HeloLine int
	Auth     *policy.Auth
	MailFrom *policy.MailAddr
	Rcpts    []policy.MailAddr
	// Headers and Body are the message after `data`; HasData says whether
	// the session reached DATA.
	Headers []policy.Header
	Body    []byte
	HasData bool
}

// ParseError is a problem in a session file, with its line.
type ParseError struct {
	File string
	Line int
	Msg  string
}

// Error renders "file:line: message".
func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Parse reads a session file: one command per line (`#` starts a comment):
//
//	connect IP[:PORT]
//	helo NAME | ehlo NAME
//	auth USER [PASSWORD]        (optional)
//	mail ADDRESS                (with or without <>; `mail <>` is the null sender)
//	rcpt ADDRESS                (repeatable)
//	data                        then the raw message up to a line holding a single "."
func Parse(name string, r io.Reader) (*Script, error) {
	s := &Script{Name: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 64<<20)
	line := 0
	fail := func(format string, args ...any) error {
		return &ParseError{File: name, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	seenConnect := false
	for sc.Scan() {
		line++
		text := strings.TrimSpace(stripComment(sc.Text()))
		if text == "" {
			continue
		}
		verb, arg, _ := strings.Cut(text, " ")
		arg = strings.TrimSpace(arg)
		switch strings.ToLower(verb) {
		case "connect":
			if seenConnect {
				return nil, fail("connect is given twice: a session file holds one connection")
			}
			ap, err := parseClient(arg)
			if err != nil {
				return nil, fail("connect: %v", err)
			}
			s.Client, seenConnect = ap, true
		case "helo", "ehlo":
			if arg == "" {
				return nil, fail("%s needs a name", verb)
			}
			s.Helo, s.HeloLine = arg, line
		case "auth":
			user, pass, _ := strings.Cut(arg, " ")
			if user == "" {
				return nil, fail("auth needs a user name")
			}
			s.Auth = &policy.Auth{Type: "PLAIN", AuthID: user, AuthPass: strings.TrimSpace(pass)}
		case "mail":
			if s.MailFrom != nil {
				return nil, fail("mail is given twice: a session file holds one transaction")
			}
			a, err := parseAddr(arg, true)
			if err != nil {
				return nil, fail("mail: %v", err)
			}
			s.MailFrom = &a
		case "rcpt":
			if s.MailFrom == nil {
				return nil, fail("rcpt before mail")
			}
			a, err := parseAddr(arg, false)
			if err != nil {
				return nil, fail("rcpt: %v", err)
			}
			s.Rcpts = append(s.Rcpts, a)
		case "data":
			if s.MailFrom == nil || len(s.Rcpts) == 0 {
				return nil, fail("data needs mail and at least one rcpt before it")
			}
			msg, n, err := readMessage(sc)
			line += n
			if err != nil {
				return nil, fail("%v", err)
			}
			s.Headers, s.Body = policy.SplitMessage(msg)
			s.HasData = true
		default:
			return nil, fail("unknown command %q (expected connect, helo, ehlo, auth, mail, rcpt or data)", verb)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if !seenConnect {
		line = 1
		return nil, fail("the session must start with connect IP[:PORT]")
	}
	return s, nil
}

func stripComment(s string) string {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		return s[:i]
	}
	return s
}

func parseClient(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not an IP address or IP:PORT", s)
	}
	return netip.AddrPortFrom(a, 49152), nil
}

func parseAddr(s string, nullOK bool) (policy.MailAddr, error) {
	s = strings.TrimSpace(s)
	// Tolerate the SMTP spelling: "FROM:<a@b>", "TO:<a@b>".
	if i := strings.IndexByte(s, ':'); i > 0 && !strings.Contains(s[:i], "@") && (strings.EqualFold(s[:i], "from") || strings.EqualFold(s[:i], "to")) {
		s = strings.TrimSpace(s[i+1:])
	}
	if f := strings.Fields(s); len(f) > 1 {
		s = f[0] // ESMTP parameters are ignored
	}
	a := policy.ParseMailAddr(s)
	if a.Null {
		if !nullOK {
			return a, fmt.Errorf("the null address <> is only allowed as the sender")
		}
		return a, nil
	}
	if a.Domain == "" || a.Local == "" {
		return a, fmt.Errorf("%q is not an address of the form local@domain", s)
	}
	return a, nil
}

// readMessage reads the message after `data` up to a line holding a single
// ".", undoing dot-stuffing, with CRLF line ends.
func readMessage(sc *bufio.Scanner) ([]byte, int, error) {
	var b bytes.Buffer
	n := 0
	for sc.Scan() {
		n++
		l := strings.TrimSuffix(sc.Text(), "\r")
		if l == "." {
			return b.Bytes(), n, nil
		}
		l = strings.TrimPrefix(l, ".")
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	return nil, n, fmt.Errorf("the message after data has no end: add a line holding a single \".\"")
}

// formatPort renders a port for the text trail.
func formatPort(p uint16) string { return strconv.Itoa(int(p)) }
