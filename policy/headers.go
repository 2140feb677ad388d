package policy

import (
	"bytes"
	"slices"
	"strings"
)

// headerOpKind is a header change a rule asked for.
type headerOpKind uint8

const (
	opAppend  headerOpKind = iota // add at the end (before the message: prepended, in order)
	opPrepend                     // add at the top
	opSet                         // change the first occurrence, or add
	opRename                      // rename the first occurrence
	opRemove                      // remove the first occurrence
)

// headerOp is a header change made before the message arrived; it is
// applied when the message arrives (SEMANTICS §5: headers added before DATA
// are prepended in the order they were added).
type headerOp struct {
	kind        headerOpKind
	name, value string
}

// SetMessage records the message's header and body when it arrives (before
// preq), and applies the header changes rules made before it arrived.
func (tx *Transaction) SetMessage(headers []Header, body []byte) {
	tx.Headers = append(tx.Headers[:0], headers...)
	tx.Body = body
	tx.inMessage = true
	top := 0 // where the next header added before the message goes
	for _, op := range tx.deferred {
		switch op.kind {
		case opAppend, opPrepend:
			tx.insertHeader(top, op.name, op.value)
			top++
		case opSet:
			if !tx.setHeader(op.name, op.value) {
				tx.insertHeader(top, op.name, op.value)
				top++
			}
		case opRename:
			tx.renameHeader(op.name, op.value)
		case opRemove:
			tx.removeHeader(op.name)
		}
	}
	tx.deferred = tx.deferred[:0]
}

// headerOp applies or defers a header change.
func (tx *Transaction) headerOp(op headerOp) {
	if !tx.inMessage {
		tx.deferred = append(tx.deferred, op)
		if tx.stage <= Authenticate {
			tx.connHdrs = append(tx.connHdrs, op)
		}
		return
	}
	switch op.kind {
	case opAppend:
		tx.Headers = append(tx.Headers, Header{Name: op.name, Value: op.value})
		tx.record(Modification{Kind: AddHeader, Name: op.name, Value: op.value})
	case opPrepend:
		tx.insertHeader(0, op.name, op.value)
	case opSet:
		if !tx.setHeader(op.name, op.value) {
			tx.Headers = append(tx.Headers, Header{Name: op.name, Value: op.value})
			tx.record(Modification{Kind: AddHeader, Name: op.name, Value: op.value})
		}
	case opRename:
		tx.renameHeader(op.name, op.value)
	case opRemove:
		tx.removeHeader(op.name)
	}
}

// firstHeader returns the index in tx.Headers of the first header named
// name (case-insensitive), or -1.
func (tx *Transaction) firstHeader(name string) int {
	for i, h := range tx.Headers {
		if strings.EqualFold(h.Name, name) {
			return i
		}
	}
	return -1
}

func (tx *Transaction) insertHeader(at int, name, value string) {
	tx.Headers = append(tx.Headers, Header{})
	copy(tx.Headers[at+1:], tx.Headers[at:])
	tx.Headers[at] = Header{Name: name, Value: value}
	tx.record(Modification{Kind: InsertHeader, Name: name, Value: value, Index: at})
}

// setHeader changes the first occurrence of name; false when there is none.
func (tx *Transaction) setHeader(name, value string) bool {
	i := tx.firstHeader(name)
	if i < 0 {
		return false
	}
	tx.Headers[i].Value = value
	tx.record(Modification{Kind: ChangeHeader, Name: tx.Headers[i].Name, Value: value, Index: 1})
	return true
}

// renameHeader gives the first occurrence of old the name new, in place.
func (tx *Transaction) renameHeader(old, new string) bool {
	i := tx.firstHeader(old)
	if i < 0 {
		return false
	}
	h := tx.Headers[i]
	tx.record(Modification{Kind: DeleteHeader, Name: h.Name, Index: 1})
	tx.Headers[i].Name = new
	tx.record(Modification{Kind: InsertHeader, Name: new, Value: h.Value, Index: i})
	return true
}

// removeHeader removes the first occurrence of name.
func (tx *Transaction) removeHeader(name string) bool {
	i := tx.firstHeader(name)
	if i < 0 {
		return false
	}
	tx.record(Modification{Kind: DeleteHeader, Name: tx.Headers[i].Name, Index: 1})
	tx.Headers = append(tx.Headers[:i], tx.Headers[i+1:]...)
	return true
}

// countHeader counts the headers named name.
func (tx *Transaction) countHeader(name string) int {
	n := 0
	for _, h := range tx.Headers {
		if strings.EqualFold(h.Name, name) {
			n++
		}
	}
	return n
}

// HeaderValue returns the value of the first header named name with
// folding undone and surrounding space trimmed.
func (tx *Transaction) HeaderValue(name string) (string, bool) {
	i := tx.firstHeader(name)
	if i < 0 {
		return "", false
	}
	return Unfold(tx.Headers[i].Value), true
}

// Unfold undoes header folding (RFC 5322 §2.2.3) and trims surrounding space.
func Unfold(v string) string {
	if strings.IndexByte(v, '\n') < 0 {
		return strings.TrimSpace(v)
	}
	v = strings.ReplaceAll(v, "\r\n", "")
	v = strings.ReplaceAll(v, "\n", "")
	return strings.TrimSpace(v)
}

// MessageText renders the message as it is now: header fields, a blank
// line and the body, with CRLF line ends in the header.
func (tx *Transaction) MessageText() []byte {
	return tx.AppendMessageText(nil)
}

// AppendMessageText appends the message as MessageText renders it to dst,
// growing dst once at most.
func (tx *Transaction) AppendMessageText(dst []byte) []byte {
	n := len(tx.Body) + 2
	for _, h := range tx.Headers {
		n += len(h.Name) + len(h.Value) + 4
	}
	b := slices.Grow(dst, n)
	for _, h := range tx.Headers {
		b = append(b, h.Name...)
		b = append(b, ':', ' ')
		b = append(b, h.Value...)
		b = append(b, '\r', '\n')
	}
	b = append(b, '\r', '\n')
	return append(b, tx.Body...)
}

// SplitMessage splits a message (CRLF or LF line ends) into its header
// fields, folded lines kept in the value with CRLF, and its body. A line
// that is neither a field nor a continuation ends the header: it and the
// rest are the body.
func SplitMessage(msg []byte) ([]Header, []byte) {
	var hdrs []Header
	rest := msg
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			i = len(rest)
		}
		l := strings.TrimSuffix(string(rest[:i]), "\r")
		next := rest[min(i+1, len(rest)):]
		if l == "" {
			return hdrs, next
		}
		if (l[0] == ' ' || l[0] == '\t') && len(hdrs) > 0 {
			hdrs[len(hdrs)-1].Value += "\r\n" + l
		} else if name, value, ok := strings.Cut(l, ":"); ok && fieldName(name) {
			hdrs = append(hdrs, Header{Name: name, Value: strings.TrimPrefix(value, " ")})
		} else {
			return hdrs, rest
		}
		rest = next
	}
	return hdrs, nil
}

// fieldName reports whether s is a header field name (RFC 5322 §3.6.8:
// printable ASCII but the colon).
func fieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}
