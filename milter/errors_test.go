package milter_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vsl-milter/vsl-milter/milter"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/vsl"
)

const (
	tempfail451 = "451 4.7.1 Requested action aborted: local error in processing"
	deny554     = "554 permanent problems with the remote server"
)

// TestOnError checks the three on_error settings for a script error at
// every kind of event, and that the error is logged with its position.
func TestOnError(t *testing.T) {
	const rules = `#{
  %s: [
    rule "broken" || {
      let n = 0;
      if 10 / n > 1 { next() } else { accept() }
    },
  ],
}`
	tests := []struct {
		onError policy.OnError
		want    map[string]string // by stage
	}{
		{policy.OnErrorTempfail, map[string]string{
			"connect": answered("connect", tempfail451), "mail": answered("mail", tempfail451),
			"rcpt": answered("rcpt", tempfail451), "preq": atEOM(tempfail451), "delivery": atEOM(tempfail451)}},
		{policy.OnErrorDeny, map[string]string{
			"connect": answered("connect", deny554), "mail": answered("mail", deny554),
			"rcpt": answered("rcpt", deny554), "preq": atEOM(deny554), "delivery": atEOM(deny554)}},
		{policy.OnErrorAccept, map[string]string{
			"connect": atEOM("accept"), "mail": atEOM("accept"), "rcpt": atEOM("accept"), "preq": atEOM("accept"),
			// the delivery stage runs at DATA, and nothing is left to do
			"delivery": atData("accept")}},
	}
	for _, tt := range tests {
		t.Run(tt.onError.String(), func(t *testing.T) {
			h := newHarness(t, "unix", "", func(o *milter.Options) { o.OnError = tt.onError })
			for _, stage := range []string{"connect", "mail", "rcpt", "preq", "delivery"} {
				h.load(strings.Replace(rules, "%s", stage, 1))
				if got := h.run(defaultMessage()); got != tt.want[stage] {
					t.Errorf("%s: transcript:\n%s\nwant:\n%s", stage, got, tt.want[stage])
				}
			}
			if logs := h.logs.String(); !strings.Contains(logs, `rules.vsl:5:`) || !strings.Contains(logs, `rule \"broken\"`) {
				t.Errorf("the error is not logged with its rule and position:\n%s", logs)
			}
		})
	}
}

// TestRunawayRule checks that a rule that never ends is stopped by the
// operation budget, or by the stage deadline when the budget is too large,
// and answers on_error.
func TestRunawayRule(t *testing.T) {
	t.Run("budget", func(t *testing.T) {
		h := newHarness(t, "tcp", `#{ mail: [ rule "spin" || { loop {} } ] }`)
		if got, want := h.run(defaultMessage()), answered("mail", tempfail451); got != want {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
		}
		if !strings.Contains(h.logs.String(), "budget") {
			t.Errorf("the exhausted budget is not logged:\n%s", h.logs.String())
		}
	})
	t.Run("deadline", func(t *testing.T) {
		h := newHarness(t, "tcp", "", func(o *milter.Options) { o.Deadline = 100 * time.Millisecond })
		rules, err := policy.Load("rules.vsl", []byte(`#{ rcpt: [ rule "spin" || { loop {} } ] }`),
			policy.Options{Limits: vsl.Limits{MaxOperations: 1 << 62, MaxCallDepth: 64}})
		if err != nil {
			t.Fatal(err)
		}
		h.rules.Store(rules)
		start := time.Now()
		if got, want := h.run(defaultMessage()), answered("rcpt", tempfail451); got != want {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the deadline of 100ms took %v", d)
		}
	})
}

// TestPanics checks that a panic in a builtin, in the observer (inside
// the callback, outside the interpreter) and in the deliverer answers
// on_error for that message, is logged, and leaves the server serving.
func TestPanics(t *testing.T) {
	t.Run("builtin", func(t *testing.T) {
		h := newHarness(t, "unix", "")
		env := policy.NewEnv()
		env.Define(&vsl.Builtin{Name: "explode", Fn: func(c *vsl.Call, args []vsl.Value) (vsl.Value, error) { panic("kaboom") }})
		h.load(`#{ rcpt: [ rule "boom" || { explode(); next() } ] }`, env)
		if got, want := h.run(defaultMessage()), answered("rcpt", tempfail451); got != want {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
		}
		if !strings.Contains(h.logs.String(), "kaboom") {
			t.Errorf("the panic is not logged:\n%s", h.logs.String())
		}
		h.load(`#{ rcpt: [ rule "fine" || next() ] }`)
		if got, want := h.run(defaultMessage()), atEOM("accept"); got != want {
			t.Errorf("after the panic: transcript:\n%s\nwant:\n%s", got, want)
		}
	})

	t.Run("observer at rcpt", func(t *testing.T) {
		// The first recipient's callback panics: that recipient is refused
		// at once, and the message at its end.
		obs := &panicObserver{}
		obs.left.Store(1)
		h := newHarness(t, "unix", `#{ rcpt: [ rule "r" || next() ] }`, func(o *milter.Options) { o.Observer = obs })
		msg := defaultMessage()
		msg.rcpts = []string{"a@example.net", "b@example.net"}
		want := `connect: continue
helo: continue
mail: continue
rcpt <a@example.net>: ` + tempfail451 + `
rcpt <b@example.net>: continue
eom: ` + tempfail451 + "\n"
		if got := h.run(msg); got != want {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
		}
		if logs := h.logs.String(); !strings.Contains(logs, "observer panic") || !strings.Contains(logs, "internal error") {
			t.Errorf("the panic is not logged:\n%s", logs)
		}
		if got := h.run(msg); got != atEOMWith(msg, "accept") {
			t.Errorf("after the panic: transcript:\n%s", got)
		}
	})

	t.Run("observer at eom, on_error deny", func(t *testing.T) {
		obs := &panicObserver{}
		obs.left.Store(1)
		h := newHarness(t, "unix", `#{ postq: [ rule "r" || next() ] }`, func(o *milter.Options) { o.Observer = obs; o.OnError = policy.OnErrorDeny })
		if got, want := h.run(defaultMessage()), atEOM(deny554); got != want {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
		}
		if got := h.metrics.counts(); got != "reject=1" {
			t.Errorf("metrics: %s", got)
		}
	})

	t.Run("deliverer", func(t *testing.T) {
		h := newHarness(t, "unix", `#{ delivery: [ action "local" || maildir_all() ] }`,
			func(o *milter.Options) { o.Deliverer = panicDeliverer{} })
		if got, want := h.run(defaultMessage()), atEOM(tempfail451); got != want {
			t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
		}
	})
}

// atEOMWith is atEOM for a message with other recipients.
func atEOMWith(msg message, answer string) string {
	var b strings.Builder
	b.WriteString("connect: continue\nhelo: continue\nmail: continue\n")
	for _, r := range msg.rcpts {
		b.WriteString("rcpt <" + r + ">: continue\n")
	}
	b.WriteString("eom: " + answer + "\n")
	return b.String()
}

// panicObserver panics on the first `left` directives it is told of.
type panicObserver struct{ left atomic.Int32 }

func (o *panicObserver) Directive(stage policy.Stage, d *policy.Directive, status policy.StatusKind, err error, elapsed time.Duration) {
	if o.left.Add(-1) >= 0 {
		panic("observer panic")
	}
}

func (o *panicObserver) Stage(stage policy.Stage, v policy.Verdict, elapsed time.Duration) {}

// panicDeliverer panics.
type panicDeliverer struct{}

func (panicDeliverer) Deliver(ctx context.Context, msg []byte, from policy.MailAddr, rcpts []policy.DeliveryChoice) error {
	panic("deliverer panic")
}
