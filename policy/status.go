package policy

import (
	"fmt"

	"github.com/vsl-milter/vsl-milter/policy/object"
	"github.com/vsl-milter/vsl-milter/vsl"
)

// StatusKind is what a rule decided.
type StatusKind uint8

// The statuses of SEMANTICS §3.
const (
	Next       StatusKind = iota // go on with the next directive
	Accept                       // end this stage successfully
	Faccept                      // accept, and skip every later rule of the transaction
	Deny                         // refuse; the session ends
	Reject                       // refuse this command (at rcpt: this recipient)
	Info                         // reply with a code at this command, the session goes on
	Quarantine                   // accept, but hold the message, never deliver it
	Delegated                    // the message was handed to a filter and is waiting
)

var statusNames = [...]string{"next", "accept", "faccept", "deny", "reject", "info", "quarantine", "delegated"}

// String returns the status's name as scripts write it.
func (k StatusKind) String() string {
	if int(k) < len(statusNames) {
		return statusNames[k]
	}
	return fmt.Sprintf("status(%d)", k)
}

// Finished reports whether the status ends the transaction's rule
// processing: every later stage returns it without running rules.
func (k StatusKind) Finished() bool {
	return k == Faccept || k == Deny || k == Quarantine || k == Delegated
}

// Status is the value a rule returns: a kind, an optional reply code and,
// for quarantine, the quarantine's name. It is a vSL host value.
type Status struct {
	Kind       StatusKind
	Code       *object.Code // nil: the default reply of the kind
	Quarantine string       // the quarantine name
}

// TypeName implements vsl.HostValue.
func (s *Status) TypeName() string { return "status" }

// String implements vsl.HostValue.
func (s *Status) String() string {
	switch {
	case s.Kind == Quarantine:
		return fmt.Sprintf("quarantine(%q)", s.Quarantine)
	case s.Code != nil:
		return fmt.Sprintf("%s(%q)", s.Kind, s.Code.String())
	}
	return s.Kind.String() + "()"
}

// Equal implements vsl.HostEqualer: statuses compare by kind, code and
// quarantine name, so `if r == next() {...}` works.
func (s *Status) Equal(other vsl.Value) (bool, bool) {
	o, ok := other.AsHost().(*Status)
	if !ok {
		return false, false
	}
	if s.Kind != o.Kind || s.Quarantine != o.Quarantine {
		return false, true
	}
	if (s.Code == nil) != (o.Code == nil) {
		return false, true
	}
	return s.Code == nil || *s.Code == *o.Code, true
}

// Attr implements vsl.HostAttrs: .kind, .code.
func (s *Status) Attr(name string) (vsl.Value, bool, error) {
	switch name {
	case "kind", "status":
		return vsl.String(s.Kind.String()), true, nil
	case "code":
		if s.Code == nil {
			return vsl.Unit(), true, nil
		}
		return vsl.Host(s.Code), true, nil
	case "quarantine":
		return vsl.String(s.Quarantine), true, nil
	}
	return vsl.Value{}, false, nil
}

// Reply returns the reply the status gives to the client: its code, or the
// kind's default (vSMTP's replies; SEMANTICS §3, §9). Next has none.
func (s *Status) Reply() object.Code {
	if s.Code != nil {
		return *s.Code
	}
	switch s.Kind {
	case Deny:
		return object.Code{Code: 554, Text: "permanent problems with the remote server"}
	case Reject:
		return object.Code{Code: 451, Text: "Requested action aborted: local error in processing"}
	case Next:
		return object.Code{}
	}
	return object.Code{Code: 250, Text: "Ok"}
}
