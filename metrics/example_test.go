package metrics_test

import (
	"bufio"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/vsl-milter/vsl-milter/metrics"
	"github.com/vsl-milter/vsl-milter/policy"
)

// The metrics observe the rule runner (as RunOptions.Observer), count
// transactions and reloads, and serve /metrics, /healthz and /readyz.
func Example() {
	m := metrics.New("1.0.0")

	// After loading the rules: every directive's series exist at zero.
	m.Preset([]metrics.RuleKey{{Stage: "rcpt", Rule: "check relay"}})
	m.Reload(nil)

	// What the runner reports for one transaction.
	d := &policy.Directive{Kind: policy.RuleKind, Name: "check relay"}
	m.Directive(policy.Rcpt, d, policy.Reject, nil, 80*time.Microsecond)
	m.Stage(policy.Rcpt, policy.Verdict{}, 95*time.Microsecond)
	m.Transaction(metrics.OutcomeReject)

	srv := httptest.NewServer(m.Handler(func() error { return errors.New("listener not up") }))
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL + "/readyz")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println("/readyz:", resp.Status)

	resp, err = srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "vsl_rule_verdicts_total{") && !strings.HasSuffix(line, " 0") ||
			strings.HasPrefix(line, "vsl_transactions_total{outcome=\"reject\"}") {
			fmt.Println(line)
		}
	}
	// Output:
	// /readyz: 503 Service Unavailable
	// vsl_rule_verdicts_total{rule="check relay",stage="rcpt",verdict="reject"} 1
	// vsl_transactions_total{outcome="reject"} 1
}
