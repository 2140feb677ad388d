package spool

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vsl-milter/vsl-milter/policy"
)

func TestSplitMessage(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		hdrs     []policy.Header
		body     string
	}{
		{"crlf", "A: 1\r\nB:2\r\n folded\r\n\r\nbody\r\n", []policy.Header{{Name: "A", Value: "1"}, {Name: "B", Value: "2\r\n folded"}}, "body\r\n"},
		{"lf", "A: 1\nB: 2\n\tmore\n\nbody\n", []policy.Header{{Name: "A", Value: "1"}, {Name: "B", Value: "2\r\n\tmore"}}, "body\n"},
		{"no body", "A: 1\r\n", []policy.Header{{Name: "A", Value: "1"}}, ""},
		{"no blank line", "A: 1\r\nnot a field\r\nrest\r\n", []policy.Header{{Name: "A", Value: "1"}}, "not a field\r\nrest\r\n"},
		{"empty body", "A: 1\r\n\r\n", []policy.Header{{Name: "A", Value: "1"}}, ""},
		{"no header", "\r\nbody", nil, "body"},
	} {
		hdrs, body := splitMessage([]byte(tc.in))
		if !reflect.DeepEqual(hdrs, tc.hdrs) || string(body) != tc.body {
			t.Errorf("%s: splitMessage = %q, %q; want %q, %q", tc.name, hdrs, body, tc.hdrs, tc.body)
		}
	}
}

func TestHeaderBlock(t *testing.T) {
	for in, want := range map[string]string{
		"A: 1\r\nB: 2\r\n\r\nbody\r\n": "A: 1\r\nB: 2\r\n",
		"A: 1\n\nbody":                 "A: 1\n",
		"A: 1\r\n":                     "A: 1\r\n",
		"\r\nbody":                     "",
	} {
		if got := string(headerBlock([]byte(in))); got != want {
			t.Errorf("headerBlock(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQuarantineDir(t *testing.T) {
	for in, want := range map[string]string{
		"spam": "spam", "Virus_1.x-y": "Virus_1.x-y", "": "quarantine", "  ": "quarantine",
		".": "_", "..": "_.", ".hidden": "_hidden", "../x": "_._x", "a/b\\c": "a_b_c", "é": "__",
		strings.Repeat("x", 300): strings.Repeat("x", 128),
	} {
		if got := quarantineDir(in); got != want {
			t.Errorf("quarantineDir(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"0123abcdef": true, "a-b_C": true, "": false, "a.b": false, "../x": false, "a/b": false,
		strings.Repeat("a", 64): true, strings.Repeat("a", 65): false,
	} {
		if validID(id) != want {
			t.Errorf("validID(%q) = %v", id, !want)
		}
	}
	if !validStoredID(dsnID("abc")) || validStoredID("abc.eml") {
		t.Error("validStoredID: a DSN's id is valid, other dotted names are not")
	}
}

func TestBackoff(t *testing.T) {
	s := &Spool{opts: Options{RetryPeriod: 5 * time.Minute}}
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour}
	for i, w := range want {
		if got := s.backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	s.opts.RetryPeriod = 2 * time.Hour // longer than the cap: stays
	if got := s.backoff(5); got != 2*time.Hour {
		t.Errorf("backoff with a long period = %v", got)
	}
	if got := (&Spool{opts: Options{RetryPeriod: time.Second}}).backoff(1000); got != time.Hour {
		t.Errorf("backoff(1000) = %v, want the cap", got)
	}
}

// resolver is a scripted MXResolver, with LookupHost when hosts is set.
type resolver struct {
	mx  map[string][]*net.MX
	err error
}

func (r resolver) LookupMX(_ context.Context, d string) ([]*net.MX, error) {
	if r.err != nil {
		return nil, r.err
	}
	if mx, ok := r.mx[d]; ok {
		return mx, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: d, IsNotFound: true}
}

type hostsResolver struct {
	resolver
	hosts map[string]bool
}

func (r hostsResolver) LookupHost(_ context.Context, h string) ([]string, error) {
	if r.hosts[h] {
		return []string{"192.0.2.1"}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: h, IsNotFound: true}
}

func TestMailExchangers(t *testing.T) {
	mx := map[string][]*net.MX{
		"multi.example": {{Host: "b.example.", Pref: 20}, {Host: "a.example.", Pref: 10}, {Host: "c.example:2525", Pref: 20}},
		"null.example":  {{Host: ".", Pref: 0}},
		"v6.example":    {{Host: "2001:db8::1", Pref: 0}},
	}
	for _, tc := range []struct {
		name   string
		r      MXResolver
		domain string
		hosts  []string
		status string // the failure's status, "" for none
		temp   bool
	}{
		{"preference order", resolver{mx: mx}, "multi.example", []string{"a.example:25", "b.example:25", "c.example:2525"}, "", false},
		{"null MX", resolver{mx: mx}, "null.example", nil, "5.1.10", false},
		{"IPv6 host", resolver{mx: mx}, "v6.example", []string{"[2001:db8::1]:25"}, "", false},
		{"implicit MX", resolver{mx: mx}, "plain.example", []string{"plain.example:25"}, "", false},
		{"implicit MX, host exists", hostsResolver{resolver{mx: mx}, map[string]bool{"plain.example": true}}, "plain.example", []string{"plain.example:25"}, "", false},
		{"no such domain", hostsResolver{resolver{mx: mx}, nil}, "nowhere.example", nil, "5.1.2", false},
		{"DNS failure", resolver{err: &net.DNSError{Err: "server misbehaving", IsTemporary: true}}, "x.example", nil, "4.4.3", true},
		{"other error", resolver{err: errors.New("boom")}, "x.example", nil, "4.4.3", true},
		{"address literal", resolver{}, "[192.0.2.7]", []string{"192.0.2.7:25"}, "", false},
		{"IPv6 literal", resolver{}, "[IPv6:2001:db8::2]", []string{"[2001:db8::2]:25"}, "", false},
		{"bad literal", resolver{}, "[nonsense]", nil, "5.1.2", false},
		{"no domain", resolver{}, "", nil, "5.1.2", false},
	} {
		s := &Spool{resolver: tc.r}
		hosts, f := s.mailExchangers(context.Background(), tc.domain)
		switch {
		case tc.status == "" && (f != nil || !reflect.DeepEqual(hosts, tc.hosts)):
			t.Errorf("%s: hosts %v, failure %+v; want %v", tc.name, hosts, f, tc.hosts)
		case tc.status != "" && (f == nil || f.Status != tc.status || f.Temporary != tc.temp):
			t.Errorf("%s: hosts %v, failure %+v; want status %s temporary %v", tc.name, hosts, f, tc.status, tc.temp)
		}
	}
}

func TestStaticMX(t *testing.T) {
	next := hostsResolver{resolver{mx: map[string][]*net.MX{"other.example": {{Host: "mx.other.example.", Pref: 1}}}}, map[string]bool{"h.example": true}}
	r := StaticMX(map[string]string{"Test.Example.": "127.0.0.1:2525"}, next)
	mx, err := r.LookupMX(context.Background(), "TEST.example")
	if err != nil || len(mx) != 1 || mx[0].Host != "127.0.0.1:2525" {
		t.Errorf("override: %v, %v", mx, err)
	}
	mx, err = r.LookupMX(context.Background(), "other.example")
	if err != nil || len(mx) != 1 || mx[0].Host != "mx.other.example." {
		t.Errorf("fall-through: %v, %v", mx, err)
	}
	s := &Spool{resolver: r}
	if hosts, f := s.mailExchangers(context.Background(), "test.example"); f != nil || len(hosts) != 1 || hosts[0] != "127.0.0.1:2525" {
		t.Errorf("mailExchangers through the override: %v, %+v", hosts, f)
	}
	if _, f := s.mailExchangers(context.Background(), "missing.example"); f == nil || f.Status != "5.1.2" {
		t.Errorf("LookupHost is not passed through: %+v", f)
	}
}

func TestScheduler(t *testing.T) {
	var q scheduler
	q.init()
	now := time.Now()
	q.add(job{id: "later"}, now.Add(time.Hour))
	q.add(job{id: "soon"}, now.Add(time.Minute))
	q.add(job{id: "now1"}, time.Time{})
	q.add(job{id: "now2"}, now.Add(-time.Second))
	var got []string
	for {
		j, ok, next := q.take(now)
		if !ok {
			if !next.Equal(now.Add(time.Minute)) {
				t.Errorf("next due %v, want in a minute", next.Sub(now))
			}
			break
		}
		got = append(got, j.id)
	}
	if strings.Join(got, ",") != "now1,now2" {
		t.Errorf("due now: %v", got)
	}
	for _, want := range []string{"soon", "later"} {
		j, ok, _ := q.take(now.Add(2 * time.Hour))
		if !ok || j.id != want {
			t.Errorf("took %v %v, want %s", j, ok, want)
		}
	}
}
