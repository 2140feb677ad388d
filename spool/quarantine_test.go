package spool_test

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/spool"
)

// quarantineAndRead quarantines msg under name and reads the file back.
func quarantineAndRead(t *testing.T, h *harness, name string, s policy.Saved, msg string) (*spool.Quarantined, string) {
	t.Helper()
	if err := h.sp.Quarantine(context.Background(), name, s, []byte(msg)); err != nil {
		t.Fatalf("Quarantine: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(h.opts.AppDir, "*", "*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("quarantine files %v, %v: want one", files, err)
	}
	q, err := spool.ReadQuarantined(files[0])
	if err != nil {
		t.Fatalf("ReadQuarantined: %v", err)
	}
	return q, files[0]
}

// TestQuarantineRoundTrip writes envelopes with every kind of value the
// file must make safe, and reads them back equal.
func TestQuarantineRoundTrip(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name  string
		quar  string
		saved policy.Saved
		msg   string
	}{{
		name: "null sender, TLS, auth, odd helo",
		quar: "virus found; really",
		saved: policy.Saved{
			ClientAddr:  netip.MustParseAddrPort("[2001:db8::5]:40000"),
			ServerAddr:  netip.MustParseAddrPort("192.0.2.1:587"),
			ServerName:  "mx.example.com",
			Secured:     true,
			ConnectedAt: time.Date(2026, 11, 25, 14, 29, 59, 123456789, paris),
			Helo:        "odd;h\u00e9lo \"x\"\r\nX-Injected: yes",
			AuthType:    "PLAIN",
			AuthID:      "alice; bob",
			MailFrom:    policy.MailAddr{Null: true},
			MailAt:      time.Date(2026, 11, 25, 14, 30, 0, 500000000, paris),
			Rcpts:       []policy.MailAddr{addr("b@example.net"), addr("C@Example.NET"), addr("d@example.org")},
			MessageID:   policy.NewMessageID(),
			Finished:    "faccept", // not kept
		},
		// The message begins with fields named as the envelope's.
		msg: "X-Envelope-To: <evil@example.com>\r\nX-VSL-Quarantine: fake\r\n" + testMsg,
	}, {
		name: "no recipients, nothing known, odd addresses",
		quar: "",
		saved: policy.Saved{
			Helo:      "",
			AuthType:  "none", // a mechanism named as the lack of one
			MailFrom:  addr(`"a,b> c"@example.org`),
			MessageID: "../not-an-id",
		},
		// A continuation line at the top of the message is not a recipient.
		msg: " folded\r\n" + testMsg,
	}, {
		name: "non-ASCII addresses, an id without mechanism",
		quar: "d\u00e9j\u00e0/vu",
		saved: policy.Saved{
			ClientAddr: netip.MustParseAddrPort("192.0.2.5:0"),
			AuthID:     "\xff\x00",
			MailFrom:   addr("j\u00f6rg@b\u00fccher.example"),
			Rcpts:      []policy.MailAddr{addr("\u7528\u6237@example.net"), addr("x\r\ny@example.net"), addr("plain@example.net")},
			MessageID:  policy.NewMessageID(),
		},
		msg: "",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			before := time.Now()
			q, path := quarantineAndRead(t, h, tc.quar, tc.saved, tc.msg)
			after := time.Now()
			if string(q.Message) != tc.msg {
				t.Errorf("message %q, want %q", q.Message, tc.msg)
			}
			if q.Name != tc.quar {
				t.Errorf("name %q, want %q", q.Name, tc.quar)
			}
			if q.At.Before(before) || q.At.After(after) || q.At.Location() != time.UTC {
				t.Errorf("quarantined at %v, want in [%v, %v], in UTC", q.At, before, after)
			}
			want := tc.saved
			want.Finished = ""
			want.ConnectedAt, want.MailAt = want.ConnectedAt.UTC(), want.MailAt.UTC()
			if id := strings.TrimSuffix(filepath.Base(path), ".eml"); want.MessageID != id {
				if strings.HasPrefix(tc.saved.MessageID, "..") && len(id) == 24 {
					want.MessageID = id // a new id for an invalid one
				} else {
					t.Errorf("file %s, want id %s", path, want.MessageID)
				}
			}
			got := q.Saved
			for _, tt := range []struct {
				name      string
				got, want *time.Time
			}{{"connected-at", &got.ConnectedAt, &want.ConnectedAt}, {"mail-at", &got.MailAt, &want.MailAt}} {
				if !tt.got.Equal(*tt.want) || tt.got.Location() != time.UTC {
					t.Errorf("%s %v, want %v (to the nanosecond, in UTC)", tt.name, *tt.got, *tt.want)
				}
				*tt.got, *tt.want = time.Time{}, time.Time{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("envelope read back:\n got %+v\nwant %+v", got, want)
			}
			// The envelope block is ASCII, whatever the envelope holds.
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			block := b[:len(b)-len(tc.msg)]
			for i, c := range block {
				if c >= 0x80 || c < ' ' && c != '\r' && c != '\n' {
					t.Fatalf("byte %#x at %d of the envelope block:\n%s", c, i, block)
				}
			}
			if n := strings.Count(string(block), "\r\n"); n != 4+max(len(tc.saved.Rcpts)-1, 0) {
				t.Errorf("the envelope block has %d lines:\n%s", n, block)
			}
		})
	}
}

// TestQuarantineFileFormat checks the envelope block byte for byte.
func TestQuarantineFileFormat(t *testing.T) {
	connected := time.Date(2026, 11, 25, 13, 29, 59, 0, time.UTC)
	mailAt := time.Date(2026, 11, 25, 14, 30, 0, 250000000, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		name  string
		quar  string
		saved func(*policy.Saved)
		want  string // the block after X-VSL-Quarantine
	}{{
		name: "simple",
		quar: "spam",
		saved: func(s *policy.Saved) {
			s.Rcpts = append(s.Rcpts, addr("c@example.net"), addr("d@example.net"))
		},
		want: "X-VSL-Envelope: client=192.0.2.5:40000; server=192.0.2.1:25; server-name=mx.test; helo=client.example; secured=no; auth=none; connected-at=2026-11-25T13:29:59Z; mail-at=2026-11-25T13:30:00.25Z\r\n" +
			"X-Envelope-From: <a@example.org>\r\n" +
			"X-Envelope-To: <b@example.net>,\r\n" +
			" <c@example.net>,\r\n" +
			" <d@example.net>\r\n",
	}, {
		name: "quoted values",
		quar: "spam;x",
		saved: func(s *policy.Saved) {
			s.ClientAddr, s.ServerName, s.Secured = netip.AddrPort{}, "", true
			s.Helo, s.AuthType, s.AuthID = "odd;h\u00e9lo", "PLAIN", "al ice"
			s.MailFrom, s.Rcpts = policy.MailAddr{Null: true}, nil
		},
		want: `X-VSL-Envelope: client=""; server=192.0.2.1:25; server-name=""; helo="odd;h\u00e9lo"; secured=yes; auth=PLAIN "al ice"; connected-at=2026-11-25T13:29:59Z; mail-at=2026-11-25T13:30:00.25Z` + "\r\n" +
			"X-Envelope-From: <>\r\n" +
			"X-Envelope-To: \r\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			s := saved("a@example.org", "b@example.net")
			s.ConnectedAt, s.MailAt = connected, mailAt
			tc.saved(&s)
			before := time.Now()
			_, path := quarantineAndRead(t, h, tc.quar, s, testMsg)
			after := time.Now()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			first, rest, _ := strings.Cut(string(b), "\r\n")
			name := tc.quar
			if strings.Contains(name, ";") {
				name = `"` + name + `"`
			}
			at, ok := strings.CutPrefix(first, "X-VSL-Quarantine: "+name+"; at=")
			if ok {
				at, ok = strings.CutSuffix(at, "; id="+s.MessageID)
			}
			tm, err := time.Parse(time.RFC3339Nano, at)
			if !ok || err != nil || !strings.HasSuffix(at, "Z") || tm.Before(before) || tm.After(after) {
				t.Errorf("first line %q, want X-VSL-Quarantine: %s; at=<now, UTC>; id=%s", first, name, s.MessageID)
			}
			if rest != tc.want+testMsg {
				t.Errorf("file after its first line:\n%q\nwant\n%q", rest, tc.want+testMsg)
			}
		})
	}
}

// TestReadQuarantinedMalformed reads files that are not what Quarantine
// writes: each error names the file and says what is wrong.
func TestReadQuarantinedMalformed(t *testing.T) {
	h := newHarness(t, nil)
	s := saved("a@example.org", "b@example.net", "c@example.net")
	q, path := quarantineAndRead(t, h, "spam", s, testMsg)
	if string(q.Message) != testMsg {
		t.Fatalf("message %q", q.Message)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	good := string(b)
	lines := strings.SplitAfter(good, "\r\n")
	block := strings.Join(lines[:5], "") // the block: 4 fields, one folded
	if !strings.HasPrefix(lines[4], " <c@example.net>") {
		t.Fatalf("unexpected block:\n%s", block)
	}
	envelope := lines[1]
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("the file lacks %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"empty", "", "line 1: truncated"},
		{"a plain message", testMsg, `line 1: want the field X-VSL-Quarantine, found "Received: from`},
		{"missing field", lines[0] + strings.Join(lines[2:], ""), "line 2: want the field X-VSL-Envelope, found \"X-Envelope-From:"},
		{"wrong order", lines[0] + lines[1] + lines[3] + lines[4] + lines[2] + testMsg, "line 3: want the field X-Envelope-From, found \"X-Envelope-To:"},
		{"truncated in a line", good[:len(lines[0])+20], "X-VSL-Envelope missing: line 2: truncated: no line end"},
		{"truncated after a field", lines[0] + lines[1] + lines[2], "X-Envelope-To missing: line 4: truncated: the file ends before it"},
		{"truncated after a ','", strings.Join(lines[:4], ""), "a recipient is missing after ','"},
		{"recipient line not folded", strings.Join(lines[:4], "") + "<c@example.net>\r\n" + testMsg, "line 5: want the next recipient of X-Envelope-To"},
		{"bare LF", strings.Replace(block, "\r\n", "\n", 1) + testMsg, "line 1: ends with a bare LF"},
		{"field name in lower case", replace("X-Envelope-From:", "x-envelope-from:"), "line 3: want the field X-Envelope-From"},
		{"missing parameter", replace("; helo=client.example", ""), `line 2: X-VSL-Envelope: want "; helo=", found "; secured=no`},
		{"parameter out of order", replace("secured=no; auth=none", "auth=none; secured=no"), `want "; secured=", found "; auth=none`},
		{"extra parameter", replace("; id="+s.MessageID, "; id="+s.MessageID+"; x=1"), `line 1: X-VSL-Quarantine: unexpected "; x=1"`},
		{"bad secured", replace("secured=no", "secured=maybe"), `secured="maybe": want yes or no`},
		{"bad auth", replace("auth=none", "auth=PLAIN"), `auth="PLAIN": want none, or a mechanism and an id`},
		{"bad time", replace("; mail-at=", "; mail-at=yesterday"), "mail-at: parsing time"},
		{"bad address", replace("client=192.0.2.5:40000", "client=192.0.2.5"), "client: "},
		{"bad quoting", replace("helo=client.example", `helo="client.example`), "bad quoted value"},
		{"bad plain value", replace("helo=client.example", "helo=client\x01example"), "bad value"},
		{"address without brackets", replace("X-Envelope-From: <a@example.org>", "X-Envelope-From: a@example.org"), "line 3: X-Envelope-From: want an address in angle brackets or quoted"},
		{"garbage after an address", replace("<b@example.net>,", `"b@example.net" x,`), `line 4: X-Envelope-To: unexpected " x,"`},
		{"the envelope field empty", replace(envelope, "X-VSL-Envelope: \r\n"), `want "client=", found ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".eml")
			if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			q, err := spool.ReadQuarantined(p)
			if err == nil {
				t.Fatalf("read %+v, want an error", q)
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want one naming %s and saying %q", err, p, tc.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		p := filepath.Join(dir, "none.eml")
		if _, err := spool.ReadQuarantined(p); err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p) {
			t.Errorf("error %v, want not exist naming %s", err, p)
		}
	})
}

// BenchmarkQuarantineParallel measures Quarantine as the SMTP server sees
// it before its 250, from many sessions at once, with 100 KiB messages:
// one file written and fsynced, renamed, the directory fsynced.
func BenchmarkQuarantineParallel(b *testing.B) {
	h := newHarness(b, nil)
	defer h.close()
	msg := []byte(testMsg + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 100<<10/78))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.SetParallelism(20)
	b.RunParallel(func(pb *testing.PB) {
		s := saved("a@example.org", "b@example.net")
		for pb.Next() {
			s.MessageID = policy.NewMessageID()
			if err := h.sp.Quarantine(context.Background(), "spam", s, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
