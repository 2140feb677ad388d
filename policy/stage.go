package policy

import "fmt"

// Stage is a point of the SMTP transaction where rules run.
type Stage uint8

// The stages in transaction order. Delivery is also spelled "deliver" in
// the vSMTP v1 documentation; both are accepted.
const (
	Connect Stage = iota
	Helo
	Authenticate
	Mail
	Rcpt
	PreQ
	PostQ
	Delivery
	numStages
)

var stageNames = [...]string{"connect", "helo", "authenticate", "mail", "rcpt", "preq", "postq", "delivery"}

// Stages lists every stage in order.
func Stages() []Stage {
	s := make([]Stage, numStages)
	for i := range s {
		s[i] = Stage(i)
	}
	return s
}

// String returns the stage's name as scripts write it.
func (s Stage) String() string {
	if int(s) < len(stageNames) {
		return stageNames[s]
	}
	return fmt.Sprintf("stage(%d)", s)
}

// ParseStage returns the stage named name ("deliver" is Delivery).
func ParseStage(name string) (Stage, bool) {
	if name == "deliver" {
		return Delivery, true
	}
	for i, n := range stageNames {
		if n == name {
			return Stage(i), true
		}
	}
	return 0, false
}

// AfterData reports whether the stage runs once the message is known.
func (s Stage) AfterData() bool { return s >= PreQ }
