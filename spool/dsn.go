package spool

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/vsl-milter/vsl-milter/policy"
)

// maxDiagnostic bounds the diagnostic text of one recipient in a DSN, to
// keep its lines under the 998 octets of RFC 5322.
const maxDiagnostic = 900

// dsnInput is what a delivery status notification reports.
type dsnInput struct {
	ID       string // the DSN's id, also its Message-ID's local part
	Hostname string // the reporting MTA
	Date     time.Time
	Arrival  time.Time       // when the original message was queued
	Sender   policy.MailAddr // the original envelope sender: the DSN's recipient
	Failed   []rcptState
	Header   []byte // the original message's header fields
}

// buildDSN renders a non-delivery report (RFC 3464) as a
// multipart/report; report-type=delivery-status message (RFC 6522): a
// human-readable part, the message/delivery-status part with one block
// per failed recipient, and the original header fields as
// text/rfc822-headers. It comes from MAILER-DAEMON@Hostname and is sent
// with the null sender, so that it never bounces.
func buildDSN(in dsnInput) []byte {
	const crlf = "\r\n"
	boundary := "=_" + in.ID + "_" + randomHex(8)
	date := in.Date.Format(time.RFC1123Z)
	var b bytes.Buffer
	hdr := func(name, value string) { b.WriteString(name + ": " + value + crlf) }
	hdr("From", "Mail Delivery System <MAILER-DAEMON@"+in.Hostname+">")
	hdr("To", "<"+in.Sender.String()+">")
	hdr("Subject", "Undelivered Mail Returned to Sender")
	hdr("Date", date)
	hdr("Message-ID", "<"+in.ID+"@"+in.Hostname+">")
	if mid := headerValue(in.Header, "Message-ID"); mid != "" {
		hdr("In-Reply-To", mid)
		hdr("References", mid)
	}
	hdr("Auto-Submitted", "auto-replied")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "multipart/report; report-type=delivery-status;"+crlf+"\tboundary=\""+boundary+"\"")
	b.WriteString(crlf + "This is a MIME-encapsulated message." + crlf + crlf)

	// The human-readable part.
	var text strings.Builder
	fmt.Fprintf(&text, "This is the mail system at host %s.%s%s", in.Hostname, crlf, crlf)
	text.WriteString("Your message could not be delivered to one or more recipients." + crlf)
	text.WriteString("The mail system's reasons follow." + crlf + crlf)
	for _, r := range in.Failed {
		fmt.Fprintf(&text, "<%s>: %s%s", r.Rcpt.String(), clip(diagnosticText(r)), crlf)
	}
	b.WriteString("--" + boundary + crlf)
	hdr("Content-Description", "Notification")
	hdr("Content-Type", "text/plain; charset="+charset(text.String()))
	hdr("Content-Transfer-Encoding", encoding(text.String()))
	b.WriteString(crlf + text.String() + crlf)

	// The machine-readable part.
	var st strings.Builder
	fmt.Fprintf(&st, "Reporting-MTA: dns; %s%s", in.Hostname, crlf)
	fmt.Fprintf(&st, "X-Spool-Queue-ID: %s%s", strings.TrimSuffix(in.ID, ".dsn"), crlf)
	if !in.Arrival.IsZero() {
		fmt.Fprintf(&st, "Arrival-Date: %s%s", in.Arrival.Format(time.RFC1123Z), crlf)
	}
	for _, r := range in.Failed {
		st.WriteString(crlf)
		addrType := "rfc822"
		if !isASCII(r.Rcpt.String()) {
			addrType = "utf-8" // RFC 6533
		}
		fmt.Fprintf(&st, "Final-Recipient: %s; %s%s", addrType, r.Rcpt.String(), crlf)
		st.WriteString("Action: failed" + crlf)
		fmt.Fprintf(&st, "Status: %s%s", statusOf(r), crlf)
		if r.Failure != nil && r.Failure.Remote != "" {
			fmt.Fprintf(&st, "Remote-MTA: dns; %s%s", r.Failure.Remote, crlf)
		}
		if f := r.Failure; f != nil && f.Code != 0 {
			diag := fmt.Sprintf("%d %s %s", f.Code, f.Enhanced, f.Reply)
			fmt.Fprintf(&st, "Diagnostic-Code: smtp; %s%s", clip(strings.TrimSpace(diag)), crlf)
		} else {
			fmt.Fprintf(&st, "Diagnostic-Code: X-Spool; %s%s", clip(errorText(r)), crlf)
		}
		if !r.At.IsZero() {
			fmt.Fprintf(&st, "Last-Attempt-Date: %s%s", r.At.Format(time.RFC1123Z), crlf)
		}
	}
	b.WriteString("--" + boundary + crlf)
	hdr("Content-Description", "Delivery report")
	hdr("Content-Type", "message/delivery-status")
	b.WriteString(crlf + st.String() + crlf)

	// The original header.
	b.WriteString("--" + boundary + crlf)
	hdr("Content-Description", "Undelivered Message Headers")
	hdr("Content-Type", "text/rfc822-headers")
	if !isASCII(string(in.Header)) {
		hdr("Content-Transfer-Encoding", "8bit")
	}
	b.WriteString(crlf)
	b.Write(crlfLines(in.Header))
	b.WriteString(crlf + "--" + boundary + "--" + crlf)
	return b.Bytes()
}

// statusOf returns the recipient's enhanced status code for the DSN.
func statusOf(r rcptState) string {
	if f := r.Failure; f != nil {
		class := 5
		if f.Temporary {
			class = 4
		}
		if validStatus(f.Status, class) {
			return f.Status
		}
		return fmt.Sprintf("%d.0.0", class)
	}
	return "5.0.0"
}

// errorText is the error behind a recipient's failure.
func errorText(r rcptState) string {
	if r.Failure == nil || r.Failure.Error == "" {
		return "delivery failed"
	}
	return r.Failure.Error
}

// diagnosticText is the reason a recipient failed, in words: the remote
// host's reply when there was one.
func diagnosticText(r rcptState) string {
	f := r.Failure
	if f == nil {
		return "delivery failed"
	}
	why := f.Error
	if f.Code != 0 && f.Remote != "" {
		why = strings.Join(strings.Fields(fmt.Sprintf("host %s said: %d %s %s", f.Remote, f.Code, f.Enhanced, f.Reply)), " ")
	}
	if f.Temporary {
		why += " (still failing after the last retry)"
	}
	return why
}

// clip shortens a text to maxDiagnostic bytes, on a UTF-8 boundary.
func clip(s string) string {
	s = oneLine(s)
	if len(s) <= maxDiagnostic {
		return s
	}
	cut := maxDiagnostic
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "..."
}

// headerValue returns the unfolded value of the first field named name in
// a header block, or "".
func headerValue(header []byte, name string) string {
	hdrs, _ := splitMessage(append(append([]byte(nil), header...), "\r\n"...))
	for _, h := range hdrs {
		if strings.EqualFold(h.Name, name) {
			return policy.Unfold(h.Value)
		}
	}
	return ""
}

// crlfLines returns b with every line ending in CRLF.
func crlfLines(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
	if len(b) > 0 && !bytes.HasSuffix(b, []byte("\r\n")) {
		b = append(b, "\r\n"...)
	}
	return b
}

func charset(s string) string {
	if isASCII(s) {
		return "us-ascii"
	}
	return "utf-8"
}

func encoding(s string) string {
	if isASCII(s) {
		return "7bit"
	}
	return "8bit"
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
