package policy_test

import (
	"reflect"
	"testing"

	"github.com/vsl-milter/vsl-milter/policy"
)

func TestSplitMessage(t *testing.T) {
	for _, tc := range []struct {
		msg     string
		headers []policy.Header
		body    string
	}{
		{"Subject: a\r\nTo: b\r\n\r\nbody\r\n", []policy.Header{{Name: "Subject", Value: "a"}, {Name: "To", Value: "b"}}, "body\r\n"},
		{"Subject: a\r\n b\r\n\tc\r\n\r\n", []policy.Header{{Name: "Subject", Value: "a\r\n b\r\n\tc"}}, ""},
		{"X:no space\r\n\r\n", []policy.Header{{Name: "X", Value: "no space"}}, ""},
		{"not a header\r\nSubject: x\r\n", nil, "not a header\r\nSubject: x\r\n"},
		{"Subject: a\r\nbad line\r\n", []policy.Header{{Name: "Subject", Value: "a"}}, "bad line\r\n"},
		{"", nil, ""},
		{"LF: only\nx: y\n\nbody\n", []policy.Header{{Name: "LF", Value: "only"}, {Name: "x", Value: "y"}}, "body\n"},
	} {
		h, b := policy.SplitMessage([]byte(tc.msg))
		if !reflect.DeepEqual(h, tc.headers) || string(b) != tc.body {
			t.Errorf("policy.SplitMessage(%q) = %q %q, want %q %q", tc.msg, h, b, tc.headers, tc.body)
		}
	}
}
