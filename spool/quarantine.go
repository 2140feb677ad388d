package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vsl-milter/vsl-milter/internal/durable"
	"github.com/vsl-milter/vsl-milter/policy"
)

// The names of the fields of the envelope block, with their ": ".
const (
	fieldQuarantine = "X-VSL-Quarantine: "
	fieldEnvelope   = "X-VSL-Envelope: "
	fieldFrom       = "X-Envelope-From: "
	fieldTo         = "X-Envelope-To: "
)

// Quarantined is a quarantined message as ReadQuarantined reads it.
//
// A quarantined message is one file, AppDir/<name>/<id>.eml, laid out as
// amavisd-new lays out its quarantine files: the envelope as a block of
// header fields on top of the message, which follows unchanged. The block
// is always these four fields, in this order, each line ended with CRLF:
//
//	X-VSL-Quarantine: <name>; at=<time>; id=<id>
//	X-VSL-Envelope: client=<ip:port>; server=<ip:port>; server-name=<name>; helo=<helo>; secured=<yes|no>; auth=<type id|none>; connected-at=<time>; mail-at=<time>
//	X-Envelope-From: <sender>
//	X-Envelope-To: <rcpt1>,
//	 <rcpt2>
//
// so a reader takes exactly four fields (the last one folded over one
// line per recipient, each line but the last ended with ',', and empty
// without recipients) and never mistakes a header field of the message
// for one of them. The names of the fields are written, and read, exactly
// so. For example:
//
//	X-VSL-Quarantine: spam; at=2026-11-25T13:30:00.123456789Z; id=5f0c1e2d3a4b5c6d7e8f9a0b
//	X-VSL-Envelope: client=192.0.2.5:40000; server=192.0.2.1:25; server-name=mx.example.com; helo="odd;h\u00e9lo"; secured=yes; auth=PLAIN alice; connected-at=2026-11-25T13:29:59.5Z; mail-at=2026-11-25T13:30:00Z
//	X-Envelope-From: <>
//	X-Envelope-To: <bob@example.net>,
//	 <carol@example.net>
//	Received: from ...
//
// The values of X-VSL-Quarantine and X-VSL-Envelope (the quarantine's
// name, the client and server addresses, empty when unknown, the server's
// name, the HELO argument, the authentication's mechanism and id) are
// written as they are when they are made of printable ASCII (0x21-0x7E) other than '"'
// and ';'; any other value, the empty one included, is written as a Go
// string literal (strconv.QuoteToASCII: "", "a;b", "h\u00e9lo"), which
// the reader unquotes. auth is "none" without authentication, else the
// mechanism and the id separated by one space. An address of
// X-Envelope-From and X-Envelope-To is written as policy.MailAddr.String
// renders it, in angle brackets ("<>" for the null sender) when that is
// printable ASCII (0x20-0x7E), else as a Go string literal without
// brackets, and is read back with policy.ParseMailAddr. Times are UTC in
// RFC 3339 with as many fractional digits as they need
// (time.RFC3339Nano), so they are read back to the nanosecond, in UTC.
// The block is all ASCII, whatever the envelope holds.
type Quarantined struct {
	// Name is the quarantine's name as the rules gave it (the directory
	// holding the file is this name made safe).
	Name string
	// At is when the message was quarantined, in UTC.
	At time.Time
	// Saved is the envelope. Its MessageID is the file's id (the
	// transaction's id, unless that was not a valid file name), its
	// times are in UTC, and Finished is always "": it is not kept.
	Saved policy.Saved
	// Message is the message as it was quarantined, byte for byte.
	Message []byte
}

// Quarantine holds a message the rules quarantined, never to be delivered
// by the spool: it writes one file, AppDir/<name>/<id>.eml, the envelope
// as header fields on top of the message (see Quarantined for the format,
// ReadQuarantined to read it), under a temporary name, fsynced, renamed
// into place, the directory fsynced. The id is
// saved.MessageID when that is a valid file name, so quarantining a
// message again (after a crash) rewrites the same file. name becomes one
// path element: characters other than letters, digits, '-', '_' and '.'
// are written '_', and a leading '.' too, so no name can reach outside
// AppDir. The SMTP server calls it for a quarantine at preq, before its
// 250; the spool for one after the queue.
func (s *Spool) Quarantine(ctx context.Context, name string, saved policy.Saved, message []byte) error {
	id := saved.MessageID
	if !validID(id) {
		id = policy.NewMessageID()
	}
	return s.quarantine(ctx, name, id, saved, message)
}

// quarantine writes the file of a quarantined message under id.
func (s *Spool) quarantine(ctx context.Context, name, id string, saved policy.Saved, message []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("spool: quarantine: %w", err)
	}
	if s.opts.AppDir == "" {
		return errors.New("spool: quarantine: no application directory (app.dirpath) configured")
	}
	dir := filepath.Join(s.opts.AppDir, quarantineDir(name))
	if err := mkdirSync(dir); err != nil {
		return fmt.Errorf("spool: quarantine: %w", err)
	}
	head := appendQuarantineHeader(nil, name, time.Now(), id, &saved)
	file := id + ".eml"
	// The envelope and the message go to the file in two writes: the
	// message is not copied.
	if err := writeTemp(dir, "."+file, head, message); err != nil {
		return fmt.Errorf("spool: quarantine: %w", err)
	}
	if err := os.Rename(filepath.Join(dir, "."+file+tmpSuffix), filepath.Join(dir, file)); err != nil {
		return fmt.Errorf("spool: quarantine: %w", err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("spool: quarantine: %w", err)
	}
	return nil
}

// quarantineDir turns a quarantine's name into one safe path element.
func quarantineDir(name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		return "quarantine"
	}
	b := []byte(name)
	if len(b) > 128 {
		b = b[:128]
	}
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if b[0] == '.' {
		b[0] = '_'
	}
	return string(b)
}

// appendQuarantineHeader appends the envelope block of a quarantine file
// to b.
func appendQuarantineHeader(b []byte, name string, at time.Time, id string, s *policy.Saved) []byte {
	if b == nil {
		n := 320 + len(name) + len(id) + len(s.ServerName) + len(s.Helo) + len(s.AuthType) + len(s.AuthID) +
			len(s.MailFrom.Local) + len(s.MailFrom.Domain)
		for _, r := range s.Rcpts {
			n += len(r.Local) + len(r.Domain) + 6
		}
		b = make([]byte, 0, n)
	}
	b = append(b, fieldQuarantine...)
	b = appendValue(b, name)
	b = append(b, "; at="...)
	b = appendTime(b, at)
	b = append(b, "; id="...)
	b = appendValue(b, id)

	b = append(b, "\r\n"+fieldEnvelope+"client="...)
	b = appendValue(b, addrPortText(s.ClientAddr))
	b = append(b, "; server="...)
	b = appendValue(b, addrPortText(s.ServerAddr))
	b = append(b, "; server-name="...)
	b = appendValue(b, s.ServerName)
	b = append(b, "; helo="...)
	b = appendValue(b, s.Helo)
	b = append(b, "; secured="...)
	if s.Secured {
		b = append(b, "yes"...)
	} else {
		b = append(b, "no"...)
	}
	b = append(b, "; auth="...)
	if s.AuthType == "" && s.AuthID == "" {
		b = append(b, "none"...)
	} else {
		b = appendValue(b, s.AuthType)
		b = append(b, ' ')
		b = appendValue(b, s.AuthID)
	}
	b = append(b, "; connected-at="...)
	b = appendTime(b, s.ConnectedAt)
	b = append(b, "; mail-at="...)
	b = appendTime(b, s.MailAt)

	b = append(b, "\r\n"+fieldFrom...)
	b = appendAddr(b, s.MailFrom)
	b = append(b, "\r\n"+fieldTo...)
	for i, r := range s.Rcpts {
		if i > 0 {
			b = append(b, ",\r\n "...)
		}
		b = appendAddr(b, r)
	}
	return append(b, "\r\n"...)
}

// plainValue reports whether v is written as is in a parameter of the
// envelope block: not empty, and printable ASCII other than '"' and ';'.
func plainValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' || c == ';' {
			return false
		}
	}
	return true
}

// appendValue appends a parameter's value: as is when plainValue, else
// as a Go string literal of ASCII.
func appendValue(b []byte, v string) []byte {
	if plainValue(v) {
		return append(b, v...)
	}
	return strconv.AppendQuoteToASCII(b, v)
}

// appendAddr appends an envelope address: in angle brackets when it is
// printable ASCII, else as a Go string literal of ASCII.
func appendAddr(b []byte, a policy.MailAddr) []byte {
	v := a.String()
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c >= 0x7f {
			return strconv.AppendQuoteToASCII(b, v)
		}
	}
	b = append(b, '<')
	b = append(b, v...)
	return append(b, '>')
}

// appendTime appends t in UTC, RFC 3339 with the fractional seconds it has.
func appendTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, time.RFC3339Nano)
}

// addrPortText is an address as the envelope block has it: "" for none.
func addrPortText(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}

// ReadQuarantined reads the file of a quarantined message, as Quarantine
// wrote it: the envelope block on top (its four fields, exactly), then
// the message. An error names the file and, for a file not in that
// format, the line and what is wrong with it.
func ReadQuarantined(path string) (*Quarantined, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spool: read quarantined message: %w", err)
	}
	q, err := parseQuarantined(data)
	if err != nil {
		return nil, fmt.Errorf("spool: quarantined message %s: %w", path, err)
	}
	return q, nil
}

// parseQuarantined parses the content of a quarantine file.
func parseQuarantined(data []byte) (*Quarantined, error) {
	r := &blockReader{data: data}
	q := &Quarantined{}

	p := r.field(fieldQuarantine)
	q.Name = p.value()
	q.At = p.time("at")
	q.Saved.MessageID = p.param("id")
	if err := p.end(); err != nil {
		return nil, err
	}

	s := &q.Saved
	p = r.field(fieldEnvelope)
	s.ClientAddr = p.addrPort("client")
	s.ServerAddr = p.addrPort("server")
	s.ServerName = p.param("server-name")
	s.Helo = p.param("helo")
	switch secured := p.token("secured"); {
	case p.err != nil:
	case secured == "yes":
		s.Secured = true
	case secured != "no":
		p.fail(fmt.Errorf("secured=%q: want yes or no", secured))
	}
	if p.key("auth") {
		switch v := p.value(); {
		case p.literal(" "):
			s.AuthType, s.AuthID = v, p.value()
		case p.err == nil && v != "none":
			p.fail(fmt.Errorf("auth=%q: want none, or a mechanism and an id", v))
		}
	}
	s.ConnectedAt = p.time("connected-at")
	s.MailAt = p.time("mail-at")
	if err := p.end(); err != nil {
		return nil, err
	}

	p = r.field(fieldFrom)
	s.MailFrom = p.addr()
	if err := p.end(); err != nil {
		return nil, err
	}

	p = r.field(fieldTo)
	if !p.atEnd() {
		for {
			s.Rcpts = append(s.Rcpts, p.addr())
			if !p.literal(",") {
				break
			}
			if err := p.end(); err != nil {
				return nil, err
			}
			// Another recipient follows, on a continuation line.
			p = r.continuation(fieldTo)
		}
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	q.Message = data[r.off:]
	return q, nil
}

// blockReader reads the lines of an envelope block.
type blockReader struct {
	data []byte
	off  int // where the next line starts
	line int // the number of the last line read
}

// next returns the next line, without its CRLF.
func (r *blockReader) next() (string, error) {
	r.line++
	rest := r.data[r.off:]
	i := bytes.IndexByte(rest, '\n')
	switch {
	case len(rest) == 0:
		return "", fmt.Errorf("line %d: truncated: the file ends before it", r.line)
	case i < 0:
		return "", fmt.Errorf("line %d: truncated: no line end", r.line)
	case i == 0 || rest[i-1] != '\r':
		return "", fmt.Errorf("line %d: ends with a bare LF, not CRLF", r.line)
	}
	r.off += i + 1
	return string(rest[:i-1]), nil
}

// field returns a parser of the next line's value, which must be the field
// name (with its ": ").
func (r *blockReader) field(name string) *lineParser {
	field := strings.TrimSuffix(name, ": ")
	p := &lineParser{field: field}
	line, err := r.next()
	switch {
	case err != nil:
		p.err = fmt.Errorf("%s missing: %w", field, err)
	case !strings.HasPrefix(line, name):
		p.err = fmt.Errorf("line %d: want the field %s, found %q", r.line, field, excerpt(line))
	default:
		p.whole, p.line = line[len(name):], r.line
		p.s = p.whole
	}
	return p
}

// continuation returns a parser of the next line, which must continue the
// field (begin with a space).
func (r *blockReader) continuation(name string) *lineParser {
	field := strings.TrimSuffix(name, ": ")
	p := &lineParser{field: field}
	line, err := r.next()
	switch {
	case err != nil:
		p.err = fmt.Errorf("%s: a recipient is missing after ',': %w", field, err)
	case !strings.HasPrefix(line, " "):
		p.err = fmt.Errorf("line %d: want the next recipient of %s after ',' (a line starting with a space), found %q", r.line, field, excerpt(line))
	default:
		p.whole, p.line = line[1:], r.line
		p.s = p.whole
	}
	return p
}

// excerpt shortens a line quoted in an error.
func excerpt(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// lineParser parses the value of a field of the envelope block. Its
// methods do nothing once err is set, the first error being kept.
type lineParser struct {
	field string // the field's name, for errors
	line  int    // the line's number, for errors
	whole string // the field's value
	s     string // what is left of it to parse
	err   error
}

// fail records err, unless an error was recorded already.
func (p *lineParser) fail(err error) {
	if p.err == nil {
		p.err = fmt.Errorf("line %d: %s: %w", p.line, p.field, err)
	}
}

// atEnd reports whether the line is all parsed.
func (p *lineParser) atEnd() bool { return p.err == nil && p.s == "" }

// end returns the error recorded, or one if the line has more.
func (p *lineParser) end() error {
	if p.err == nil && p.s != "" {
		p.fail(fmt.Errorf("unexpected %q", excerpt(p.s)))
	}
	return p.err
}

// literal consumes lit if the line goes on with it.
func (p *lineParser) literal(lit string) bool {
	if p.err != nil || !strings.HasPrefix(p.s, lit) {
		return false
	}
	p.s = p.s[len(lit):]
	return true
}

// key consumes "key=", after the separator "; " unless at the start of
// the value, reporting whether they were there.
func (p *lineParser) key(key string) bool {
	if p.err != nil {
		return false
	}
	want := key + "="
	if len(p.s) < len(p.whole) {
		want = "; " + want
	}
	if !p.literal(want) {
		p.fail(fmt.Errorf("want %q, found %q", want, excerpt(p.s)))
		return false
	}
	return true
}

// value consumes a value: a Go string literal, unquoted, or a plain
// value up to the next space or ';'.
func (p *lineParser) value() string {
	if p.err != nil {
		return ""
	}
	if strings.HasPrefix(p.s, `"`) {
		return p.quoted("value")
	}
	n := strings.IndexAny(p.s, " ;")
	if n < 0 {
		n = len(p.s)
	}
	v := p.s[:n]
	if !plainValue(v) {
		p.fail(fmt.Errorf("bad value %q: want printable ASCII without '\"' and ';', or a quoted string", excerpt(v)))
		return ""
	}
	p.s = p.s[n:]
	return v
}

// quoted consumes a Go string literal and returns it unquoted; what
// names it in an error.
func (p *lineParser) quoted(what string) string {
	lit, err := strconv.QuotedPrefix(p.s)
	if err == nil {
		var v string
		if v, err = strconv.Unquote(lit); err == nil {
			p.s = p.s[len(lit):]
			return v
		}
	}
	p.fail(fmt.Errorf("bad quoted %s %q: %w", what, excerpt(p.s), err))
	return ""
}

// token consumes the key and a value up to the next ';', as is.
func (p *lineParser) token(key string) string {
	if !p.key(key) {
		return ""
	}
	n := strings.IndexByte(p.s, ';')
	if n < 0 {
		n = len(p.s)
	}
	v := p.s[:n]
	p.s = p.s[n:]
	return v
}

// param consumes the key and a value.
func (p *lineParser) param(key string) string {
	if !p.key(key) {
		return ""
	}
	return p.value()
}

// time consumes the key and a time.
func (p *lineParser) time(key string) time.Time {
	v := p.token(key)
	if p.err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		p.fail(fmt.Errorf("%s: %w", key, err))
		return time.Time{}
	}
	return t.UTC()
}

// addrPort consumes the key and an address with its port, "" for none.
func (p *lineParser) addrPort(key string) netip.AddrPort {
	v := p.param(key)
	if p.err != nil || v == "" {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		p.fail(fmt.Errorf("%s: %w", key, err))
	}
	return ap
}

// addr consumes an envelope address: a Go string literal, or "<...>",
// which is the rest of the line but for a ',' ending it.
func (p *lineParser) addr() policy.MailAddr {
	if p.err != nil {
		return policy.MailAddr{}
	}
	if strings.HasPrefix(p.s, `"`) {
		v := p.quoted("address")
		if p.err != nil {
			return policy.MailAddr{}
		}
		return policy.ParseMailAddr(v)
	}
	// The address runs to the line's end, but for the ',' that says
	// another one follows: an address in brackets may hold ',' and '>'.
	v := strings.TrimSuffix(p.s, ",")
	if len(v) < 2 || v[0] != '<' || v[len(v)-1] != '>' {
		p.fail(fmt.Errorf("want an address in angle brackets or quoted, found %q", excerpt(p.s)))
		return policy.MailAddr{}
	}
	p.s = p.s[len(v):]
	return policy.ParseMailAddr(v)
}
