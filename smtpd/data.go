package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/policy/object"
)

// data runs DATA: the message is read, the preq stage runs on it, and the
// message is queued or quarantined, durably, before the client is told
// 250.
func (c *conn) data(arg string) {
	switch {
	case arg != "":
		c.reply(c.srv.replies.get(rSyntaxErrorParams))
		return
	case !c.tx.active || c.tx.rcpts == 0:
		c.reply(c.srv.replies.get(rBadSequence))
		return
	}
	c.reply(c.srv.replies.get(rDataStart))
	if c.flush() != nil {
		return
	}
	msg, tooBig, err := c.readMessage()
	if err != nil {
		c.readFailed(err)
		return
	}
	defer c.endTransaction()
	if tooBig {
		c.log.Info("message refused: larger than message_size_limit", "id", c.ps.Tx.MessageID,
			"message_size_limit", c.srv.cfg.Server.MessageSizeLimit)
		c.reply(c.srv.replies.get(rMessageSizeExceeded))
		return
	}
	headers, body := policy.SplitMessage(msg)
	if n := hops(headers); n > maxHops {
		c.log.Info("message refused: mail loop", "id", c.ps.Tx.MessageID, "received_fields", n, "limit", maxHops)
		c.reply(c.srv.replies.get(rTooManyHops))
		return
	}
	headers = append([]policy.Header{c.received()}, headers...)
	c.queue(c.ps.Message(c.srv.ctx, headers, body))
}

// maxHops is how many Received fields a message may carry when it
// arrives: one more is a mail loop (RFC 5321 §6.3: a server must not
// refuse fewer than 100).
const maxHops = 100

// hops counts the Received fields of a message's header.
func hops(headers []policy.Header) int {
	n := 0
	for _, h := range headers {
		if strings.EqualFold(h.Name, "Received") {
			n++
		}
	}
	return n
}

// queue acts on the preq decision: the message is refused, dropped, or
// handed to the Queue (Enqueue, or Quarantine) before the 250. When the
// Queue fails, the client is told 451 and keeps the message.
func (c *conn) queue(d policy.Decision) {
	switch d.Action {
	case policy.ActionRefuse:
		c.refuse(policy.PreQ, d)
		return
	case policy.ActionDiscard:
		c.finish(outcomeDiscard, d, object.Code{}, nil)
		c.replyContinue(d, rOk)
		return
	case policy.ActionContinue, policy.ActionQuarantine:
	default:
		r := c.srv.replies.get(rFailure)
		c.finish(outcomeTempfail, d, r, fmt.Errorf("smtpd: a %s decision cannot be carried out at preq", d.Action))
		c.reply(r)
		return
	}
	saved := c.ps.Tx.Save()
	msg := c.ps.Tx.MessageText()
	outcome, id := outcomeAccept, ""
	var err error
	if d.Action == policy.ActionQuarantine {
		outcome = outcomeQuarantine
		err = c.srv.opts.Queue.Quarantine(c.srv.ctx, d.Quarantine, saved, msg)
	} else {
		id, err = c.srv.opts.Queue.Enqueue(c.srv.ctx, saved, msg)
	}
	if err != nil {
		r := c.srv.replies.get(rFailure)
		c.finish(outcomeTempfail, d, r, fmt.Errorf("smtpd: queueing the message: %w", err))
		c.reply(r)
		return
	}
	extra := []any{"size", len(msg)}
	if id != "" {
		extra = append(extra, "queue_id", id)
	}
	c.finish(outcome, d, object.Code{}, nil, extra...)
	c.replyContinue(d, rOk)
}

// Bounds of the starting capacity of the buffer readMessage reads a
// message into: the size MAIL FROM declared, but at least defaultPrealloc
// (what a message without SIZE gets) and at most maxPrealloc (a client's
// claim costs memory before it sends anything) or message_size_limit. A
// larger message grows the buffer as it comes.
const (
	defaultPrealloc = 32 << 10
	maxPrealloc     = 4 << 20
)

// readMessage reads the message that follows DATA up to the line ".",
// each line within timeout_client.data (counted from when the server
// starts waiting for it). It undoes dot-stuffing and ends every line with
// CRLF (a bare LF ends a line too). Only "." followed by CRLF ends the
// message, so that no other reading of the end of data can smuggle a
// second message through. Past message_size_limit the rest is read and
// dropped, and tooBig is set.
func (c *conn) readMessage() (msg []byte, tooBig bool, err error) {
	limit := c.srv.cfg.Server.MessageSizeLimit
	timeout := c.srv.cfg.Server.SMTP.TimeoutClient.Data
	msg = make([]byte, 0, preallocSize(c.tx.size, limit))
	start := true // the next chunk begins a line
	for {
		// The deadline is set only when the next read goes to the
		// network: a line already in the buffer needs none, and setting
		// one for each line costs a clock reading and a timer update.
		if n := c.r.Buffered(); n == 0 || !lineBuffered(c.r, n) {
			c.nc.SetDeadline(time.Now().Add(timeout))
		}
		chunk, err := c.r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, false, err
		}
		whole := err == nil // chunk ends the line
		if start && whole && string(chunk) == ".\r\n" {
			return msg, tooBig, nil
		}
		if start && len(chunk) > 0 && chunk[0] == '.' {
			chunk = chunk[1:]
		}
		start = whole
		if tooBig {
			continue
		}
		if !whole {
			msg = append(msg, chunk...)
		} else {
			msg = append(msg, chunk[:len(chunk)-1]...)
			msg = bytes.TrimSuffix(msg, []byte("\r"))
			msg = append(msg, '\r', '\n')
		}
		if int64(len(msg)) > limit {
			tooBig, msg = true, nil
		}
	}
}

// lineBuffered reports whether the n bytes buffered in r hold a line end,
// so that ReadSlice('\n') returns without reading from the network.
func lineBuffered(r *bufio.Reader, n int) bool {
	b, _ := r.Peek(n) // never reads: n bytes are buffered
	return bytes.IndexByte(b, '\n') >= 0
}

// preallocSize is the starting capacity of a message's buffer, for the
// size declared (0 if none) and message_size_limit.
func preallocSize(declared, limit int64) int64 {
	return max(min(max(declared, defaultPrealloc), maxPrealloc, limit), 0)
}

// received is the Received: trace field the server adds on top of the
// message (RFC 5321 §4.4), before the preq stage, as Postfix does before
// its milters see the message. Its protocol is RFC 3848's (ESMTPSA and so
// on).
func (c *conn) received() policy.Header {
	tx := c.ps.Tx
	proto := "SMTP"
	if c.esmtp {
		proto = "ESMTP"
		if c.secured {
			proto += "S"
		}
		if c.authed {
			proto += "A"
		}
	}
	return policy.Header{Name: "Received", Value: fmt.Sprintf("from %s ([%s])\r\n\tby %s with %s id %s;\r\n\t%s",
		tx.Helo, c.client.Addr(), c.srv.cfg.Server.Domain, proto, tx.MessageID, time.Now().Format(time.RFC1123Z))}
}
