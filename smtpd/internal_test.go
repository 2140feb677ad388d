package smtpd

import (
	"slices"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/config"
	"github.com/vsl-milter/vsl-milter/policy/object"
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		arg, prefix string
		want        string // the address, "<>" for the null path, "!" for a syntax error
		params      []string
	}{
		{"FROM:<joe@example.com>", "FROM:", "joe@example.com", nil},
		{"from:<joe@example.com>", "FROM:", "joe@example.com", nil},
		{"FROM: <joe@example.com> SIZE=10 BODY=8BITMIME", "FROM:", "joe@example.com", []string{"SIZE=10", "BODY=8BITMIME"}},
		{"FROM:joe@example.com SIZE=10", "FROM:", "joe@example.com", []string{"SIZE=10"}},
		{"FROM:<>", "FROM:", "<>", nil},
		{"FROM:<> SIZE=1", "FROM:", "<>", []string{"SIZE=1"}},
		{"TO:<@a.example,@b.example:jane@example.org>", "TO:", "jane@example.org", nil},
		{`TO:<"jane doe>"@example.org>`, "TO:", `"jane doe>"@example.org`, nil},
		{"TO:<Postmaster>", "TO:", "Postmaster", nil},
		{"TO:<jane@example.org>", "FROM:", "!", nil},
		{"FROM:<joe@example.com", "FROM:", "!", nil},
		{"FROM:<joe@example.com>SIZE=1", "FROM:", "!", nil},
		{"FROM:<jo e@example.com>", "FROM:", "!", nil},
		{"FROM:<joe\x01@example.com>", "FROM:", "!", nil},
		{"FROM:<joe@>", "FROM:", "!", nil},
		{"FROM:<@example.com>", "FROM:", "!", nil},
		{"FROM:", "FROM:", "!", nil},
		{"FROM: SIZE=1", "FROM:", "!", nil},
	} {
		addr, params, ok := parsePath(tc.arg, tc.prefix)
		got := addr.String()
		switch {
		case !ok:
			got = "!"
		case addr.Null:
			got = "<>"
		}
		if got != tc.want || ok && !slices.Equal(params, tc.params) {
			t.Errorf("parsePath(%q) = %q %q, want %q %q", tc.arg, got, params, tc.want, tc.params)
		}
	}
}

func TestAppendReply(t *testing.T) {
	for _, tc := range []struct {
		r    object.Code
		want string
	}{
		{object.Code{Code: 250, Text: "Ok"}, "250 Ok\r\n"},
		{object.Code{Code: 334}, "334 \r\n"},
		{object.Code{Code: 550, Enhanced: "5.7.1", Text: "no"}, "550 5.7.1 no\r\n"},
		{object.Code{Code: 250, Text: "a\nb\nc"}, "250-a\r\n250-b\r\n250 c\r\n"},
		// A rule's text cannot inject a reply of its own.
		{object.Code{Code: 550, Enhanced: "5.7.1", Text: "one\r\n250 two"}, "550-5.7.1 one\r\n550 5.7.1 250 two\r\n"},
	} {
		if got := string(appendReply(nil, tc.r)); got != tc.want {
			t.Errorf("appendReply(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestReplies(t *testing.T) {
	r := newReplies("mx.example.com", nil)
	for id := replyID(0); id < numReplies; id++ {
		if id == rEhloPain || id == rEhloSecured {
			continue
		}
		if c := r.get(id); c.Code < 200 || c.Code > 599 || strings.Contains(c.Text, "{domain}") {
			t.Errorf("reply %d: %+v", id, c)
		}
	}
	if got := replyText(r.get(rGreetings)); got != "220 mx.example.com Service ready" {
		t.Errorf("greeting %q", got)
	}
	o := newReplies("mx.example.com", map[string]config.Reply{
		"Greetings": {Code: 220, Text: "{domain} ESMTP at your service"},
		"EhloPain":  {Code: 250, Text: "mx.example.com"},
	})
	if got := replyText(o.get(rGreetings)); got != "220 mx.example.com ESMTP at your service" {
		t.Errorf("overridden greeting %q", got)
	}
	if !o.set[rEhloPain] || o.set[rEhloSecured] || r.set[rEhloPain] {
		t.Errorf("configured EHLO replies: %v, defaults: %v", o.set, r.set)
	}
}
