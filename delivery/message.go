package delivery

import (
	"bytes"
	"strings"
	"sync"

	"github.com/vsl-milter/vsl-milter/policy"
)

// localMessage is a message prepared once for all its local copies, which
// store it the Unix way: with LF line ends.
type localMessage struct {
	returnPath string // the Return-Path field, with its line end
	body       []byte // the message, CRLF turned into LF
	lines      int    // the LFs in body
	sender     string // the sender as the mbox From line shows it
	// mbox returns body quoted for mboxrd and ending with a line end; it
	// is computed by the first mbox copy.
	mbox func() []byte
}

func newLocalMessage(msg []byte, from policy.MailAddr) *localMessage {
	m := &localMessage{
		returnPath: "Return-Path: <" + from.String() + ">\n",
		body:       bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")),
		sender:     "MAILER-DAEMON",
	}
	m.lines = bytes.Count(m.body, []byte("\n"))
	if !from.Null {
		// A quoted local part may hold blanks, which would end the
		// sender field of the From line.
		m.sender = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' {
				return '_'
			}
			return r
		}, from.String())
	}
	m.mbox = sync.OnceValue(func() []byte { return quoteMboxrd(m.body) })
	return m
}

// header returns the fields prepended to rcpt's copy.
func (m *localMessage) header(rcpt policy.MailAddr) []byte {
	return []byte(m.returnPath + "Delivered-To: " + rcpt.String() + "\n")
}

// quoteMboxrd quotes body for an mboxrd file: every line that starts with
// "From " after any number of '>' gets one more '>', so that readers can
// both find the message boundaries and undo the quoting exactly. The
// result ends with a line end.
func quoteMboxrd(body []byte) []byte {
	out := make([]byte, 0, len(body)+64)
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line = body[:i+1]
		}
		body = body[len(line):]
		if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
			out = append(out, '>')
		}
		out = append(out, line...)
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out
}
