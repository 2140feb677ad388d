package metrics_test

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vsl-milter/vsl-milter/metrics"
	"github.com/vsl-milter/vsl-milter/policy"
)

// scrape is one parsed /metrics answer.
type scrape map[string]*dto.MetricFamily

// get scrapes h's /metrics and parses the text exposition.
func get(t testing.TB, h http.Handler) scrape {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// labels renders a metric's labels as "k=v,k=v" in name order.
func labels(m *dto.Metric) string {
	var parts []string
	for _, lp := range m.GetLabel() {
		parts = append(parts, lp.GetName()+"="+lp.GetValue())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// series returns the series of family name as "labels" → value (counter,
// gauge or untyped; for histograms the sample count).
func (s scrape) series(name string) map[string]float64 {
	out := map[string]float64{}
	mf, ok := s[name]
	if !ok {
		return out
	}
	for _, m := range mf.GetMetric() {
		var v float64
		switch {
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Histogram != nil:
			v = float64(m.GetHistogram().GetSampleCount())
		default:
			v = m.GetUntyped().GetValue()
		}
		out[labels(m)] = v
	}
	return out
}

// value returns the value of the series of name with exactly lbls.
func (s scrape) value(t testing.TB, name, lbls string) float64 {
	t.Helper()
	v, ok := s.series(name)[lbls]
	if !ok {
		t.Fatalf("%s{%s}: no such series; have %v", name, lbls, s.series(name))
	}
	return v
}

// rule returns a directive of kind rule named name.
func rule(name string) *policy.Directive {
	return &policy.Directive{Kind: policy.RuleKind, Name: name}
}

// verdictSeries returns the label sets of a directive's verdict series
// with the given counts, every other verdict at zero.
func verdictSeries(stage, name string, counts map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, v := range []string{"next", "accept", "faccept", "deny", "reject", "info", "quarantine", "delegated", "error"} {
		out[fmt.Sprintf("rule=%s,stage=%s,verdict=%s", name, stage, v)] = counts[v]
	}
	return out
}

// merge merges label-set maps.
func merge(ms ...map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// equalSeries fails unless got and want hold the same series and values.
func equalSeries(t *testing.T, name string, got, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s{%s}: missing, want %v", name, k, w)
		} else if g != w {
			t.Errorf("%s{%s} = %v, want %v", name, k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s{%s} = %v: unexpected series", name, k, g)
		}
	}
}

func TestDirectiveAndPreset(t *testing.T) {
	m := metrics.New("test")
	h := m.Handler(nil)

	m.Preset([]metrics.RuleKey{
		{Stage: "connect", Rule: "a"},
		{Stage: "rcpt", Rule: "b"},
		{Stage: "rcpt", Rule: "b"},        // duplicate: one set of series
		{Stage: "nowhere", Rule: "bogus"}, // not a stage: ignored
	})
	s := get(t, h)
	equalSeries(t, "vsl_rule_verdicts_total", s.series("vsl_rule_verdicts_total"), merge(
		verdictSeries("connect", "a", nil),
		verdictSeries("rcpt", "b", nil),
	))
	equalSeries(t, "vsl_rule_errors_total", s.series("vsl_rule_errors_total"), map[string]float64{
		"rule=a,stage=connect": 0,
		"rule=b,stage=rcpt":    0,
	})

	a, b, c := rule("a"), rule("b"), &policy.Directive{Kind: policy.ActionKind, Name: "c"}
	m.Directive(policy.Connect, a, policy.Accept, nil, time.Millisecond)
	m.Directive(policy.Connect, a, policy.Accept, nil, time.Millisecond)
	m.Directive(policy.Rcpt, b, policy.Next, nil, time.Millisecond)
	m.Directive(policy.Rcpt, b, policy.Next, errors.New("boom"), time.Millisecond)
	m.Directive(policy.Mail, c, policy.Next, nil, time.Millisecond) // never preset: created on first run
	m.Directive(policy.Rcpt, a, policy.Deny, nil, time.Millisecond) // same name, other stage

	s = get(t, h)
	equalSeries(t, "vsl_rule_verdicts_total", s.series("vsl_rule_verdicts_total"), merge(
		verdictSeries("connect", "a", map[string]float64{"accept": 2}),
		verdictSeries("rcpt", "b", map[string]float64{"next": 1, "error": 1}),
		verdictSeries("mail", "c", map[string]float64{"next": 1}),
		verdictSeries("rcpt", "a", map[string]float64{"deny": 1}),
	))
	equalSeries(t, "vsl_rule_errors_total", s.series("vsl_rule_errors_total"), map[string]float64{
		"rule=a,stage=connect": 0,
		"rule=b,stage=rcpt":    1,
		"rule=c,stage=mail":    0,
		"rule=a,stage=rcpt":    0,
	})

	// A reload keeping a and adding d: a keeps its counts, the others'
	// series go away, d appears at zero.
	m.Preset([]metrics.RuleKey{{Stage: "connect", Rule: "a"}, {Stage: "delivery", Rule: "d"}})
	s = get(t, h)
	equalSeries(t, "vsl_rule_verdicts_total", s.series("vsl_rule_verdicts_total"), merge(
		verdictSeries("connect", "a", map[string]float64{"accept": 2}),
		verdictSeries("delivery", "d", nil),
	))
	equalSeries(t, "vsl_rule_errors_total", s.series("vsl_rule_errors_total"), map[string]float64{
		"rule=a,stage=connect":  0,
		"rule=d,stage=delivery": 0,
	})

	// A directive removed by the reload but still running in an old
	// transaction is counted again (its series come back).
	m.Directive(policy.Rcpt, b, policy.Reject, nil, time.Millisecond)
	if got := get(t, h).value(t, "vsl_rule_verdicts_total", "rule=b,stage=rcpt,verdict=reject"); got != 1 {
		t.Errorf("reject of removed rule b = %v, want 1", got)
	}
}

func TestStageHistogram(t *testing.T) {
	m := metrics.New("test")
	m.Stage(policy.Rcpt, policy.Verdict{Stage: policy.Rcpt}, 3*time.Millisecond)
	m.Stage(policy.Rcpt, policy.Verdict{Stage: policy.Rcpt}, 40*time.Microsecond)
	m.Stage(policy.PreQ, policy.Verdict{Stage: policy.PreQ}, 2*time.Second)

	s := get(t, m.Handler(nil))
	// Every stage has a series from the start, unobserved ones at zero.
	want := map[string]float64{}
	for _, st := range policy.Stages() {
		want["stage="+st.String()] = 0
	}
	want["stage=rcpt"], want["stage=preq"] = 2, 1
	equalSeries(t, "vsl_stage_duration_seconds", s.series("vsl_stage_duration_seconds"), want)

	for _, m := range s["vsl_stage_duration_seconds"].GetMetric() {
		if labels(m) != "stage=rcpt" {
			continue
		}
		hist := m.GetHistogram()
		if got := hist.GetSampleSum(); math.Abs(got-0.00304) > 1e-12 {
			t.Errorf("rcpt sum = %v, want 0.00304", got)
		}
		buckets := map[float64]uint64{}
		for _, b := range hist.GetBucket() {
			buckets[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		for le, want := range map[float64]uint64{10e-6: 0, 25e-6: 0, 50e-6: 1, 2.5e-3: 1, 5e-3: 2, 30: 2} {
			if got, ok := buckets[le]; !ok || got != want {
				t.Errorf("rcpt bucket le=%v = %v (present %v), want %v", le, got, ok, want)
			}
		}
	}
}

func TestCounters(t *testing.T) {
	m := metrics.New("1.2.3")
	h := m.Handler(nil)

	for _, o := range []string{metrics.OutcomeAccept, metrics.OutcomeAccept, metrics.OutcomeReject, metrics.OutcomeQuarantine} {
		m.Transaction(o)
	}
	m.SessionOpened()
	m.SessionOpened()
	m.SessionOpened()
	m.SessionClosed()
	m.SMTP().SessionOpened()
	m.SMTP().Transaction(metrics.OutcomeAccept)
	m.Delegation("clamav", "success")
	m.Delegation("clamav", "success")
	m.Delegation("spamd", "timeout")
	m.SpoolSize("deferred", 7)
	m.SpoolSize("working", 3)
	m.SpoolSize("deferred", 5)

	before := time.Now()
	m.Loaded()
	if got := get(t, h).value(t, "vsl_config_last_reload_successful", ""); got != 1 {
		t.Errorf("vsl_config_last_reload_successful = %v after the start-up load, want 1", got)
	}
	m.Reload(nil)
	m.Reload(errors.New("bad rules"))
	m.Reload(errors.New("bad rules"))
	after := time.Now()

	s := get(t, h)
	for _, tc := range []struct {
		name string
		want map[string]float64
	}{
		{"vsl_transactions_total", map[string]float64{
			"outcome=accept": 3, "outcome=reject": 1, "outcome=tempfail": 0, "outcome=discard": 0, "outcome=quarantine": 1,
		}},
		{"vsl_milter_sessions", map[string]float64{"": 2}},
		{"vsl_smtp_sessions", map[string]float64{"": 1}},
		{"vsl_delegations_total", map[string]float64{"result=success,service=clamav": 2, "result=timeout,service=spamd": 1}},
		{"vsl_spool_messages", map[string]float64{"queue=deferred": 5, "queue=working": 3}},
		{"vsl_config_reloads_total", map[string]float64{"result=success": 1, "result=failure": 2}},
		{"vsl_config_last_reload_successful", map[string]float64{"": 0}},
		{"vsl_build_info", map[string]float64{"goversion=" + runtime.Version() + ",version=1.2.3": 1}},
	} {
		equalSeries(t, tc.name, s.series(tc.name), tc.want)
	}
	ts := s.value(t, "vsl_config_last_reload_success_timestamp_seconds", "")
	if lo, hi := float64(before.Unix()), float64(after.Unix()+1); ts < lo || ts > hi {
		t.Errorf("last reload timestamp = %v, want in [%v, %v]", ts, lo, hi)
	}

	// A later success sets the flag back.
	m.Reload(nil)
	if got := get(t, h).value(t, "vsl_config_last_reload_successful", ""); got != 1 {
		t.Errorf("vsl_config_last_reload_successful = %v after a success, want 1", got)
	}
}

func TestEveryMetricHasHelp(t *testing.T) {
	m := metrics.New("test")
	m.Preset([]metrics.RuleKey{{Stage: "mail", Rule: "r"}})
	m.Delegation("s", "success")
	m.SpoolSize("q", 1)
	s := get(t, m.Handler(nil))
	wantFams := []string{
		"vsl_rule_verdicts_total", "vsl_rule_errors_total", "vsl_stage_duration_seconds",
		"vsl_transactions_total", "vsl_milter_sessions", "vsl_smtp_sessions", "vsl_config_reloads_total",
		"vsl_config_last_reload_successful", "vsl_config_last_reload_success_timestamp_seconds",
		"vsl_delegations_total", "vsl_spool_messages", "vsl_build_info",
		"go_goroutines", "go_memstats_alloc_bytes", "promhttp_metric_handler_requests_total",
	}
	if runtime.GOOS == "linux" {
		wantFams = append(wantFams, "process_cpu_seconds_total", "process_open_fds")
	}
	for _, name := range wantFams {
		if _, ok := s[name]; !ok {
			t.Errorf("family %s not exported", name)
		}
	}
	for name, mf := range s {
		if strings.HasPrefix(name, "vsl_") && len(mf.GetHelp()) < 20 {
			t.Errorf("%s: help text %q is too short", name, mf.GetHelp())
		}
	}
}

func TestInstancesAreIndependent(t *testing.T) {
	// No default registry: two instances (say, in two tests) coexist and
	// count apart; a second Handler on the same instance works too.
	m1, m2 := metrics.New("one"), metrics.New("two")
	m1.Transaction(metrics.OutcomeAccept)
	if got := get(t, m1.Handler(nil)).value(t, "vsl_transactions_total", "outcome=accept"); got != 1 {
		t.Errorf("m1 accept = %v, want 1", got)
	}
	if got := get(t, m2.Handler(nil)).value(t, "vsl_transactions_total", "outcome=accept"); got != 0 {
		t.Errorf("m2 accept = %v, want 0", got)
	}
	if got := get(t, m1.Handler(nil)).value(t, "vsl_transactions_total", "outcome=accept"); got != 1 {
		t.Errorf("m1 accept via a second handler = %v, want 1", got)
	}
}

func TestProbes(t *testing.T) {
	var (
		mu       sync.Mutex
		notReady = errors.New("rules not loaded")
		state    = notReady
	)
	ready := func() error {
		mu.Lock()
		defer mu.Unlock()
		return state
	}
	h := metrics.New("test").Handler(ready)

	do := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		body, _ := io.ReadAll(rec.Body)
		return rec.Code, string(body)
	}
	for _, tc := range []struct {
		name, method, path string
		setReady           bool
		code               int
		body               string
	}{
		{"live while not ready", "GET", "/healthz", false, 200, "ok\n"},
		{"not ready", "GET", "/readyz", false, 503, "rules not loaded\n"},
		{"ready", "GET", "/readyz", true, 200, "ok\n"},
		{"head probe", "HEAD", "/healthz", true, 200, ""},
		{"post is refused", "POST", "/healthz", true, 405, ""},
		{"unknown path", "GET", "/nope", true, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			if tc.setReady {
				state = nil
			}
			mu.Unlock()
			code, body := do(tc.method, tc.path)
			if code != tc.code {
				t.Errorf("%s %s: code %d, want %d", tc.method, tc.path, code, tc.code)
			}
			if tc.body != "" && body != tc.body {
				t.Errorf("%s %s: body %q, want %q", tc.method, tc.path, body, tc.body)
			}
		})
	}

	// A nil ready function is always ready.
	rec := httptest.NewRecorder()
	metrics.New("test").Handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 {
		t.Errorf("/readyz with nil ready: %d, want 200", rec.Code)
	}
}

func TestConcurrentUse(t *testing.T) {
	// Directive runs (hits and first runs) racing with reloads and
	// scrapes; run with -race.
	m := metrics.New("test")
	h := m.Handler(nil)
	const workers, runs = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			d := rule(fmt.Sprintf("r%d", w%4))
			for i := range runs {
				m.Directive(policy.Rcpt, d, policy.StatusKind(i%3), nil, time.Microsecond)
				m.Stage(policy.Rcpt, policy.Verdict{}, time.Microsecond)
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			keys := []metrics.RuleKey{{Stage: "rcpt", Rule: "r0"}, {Stage: "rcpt", Rule: "r1"}}
			if i%2 == 0 {
				keys = append(keys, metrics.RuleKey{Stage: "rcpt", Rule: "r2"}, metrics.RuleKey{Stage: "rcpt", Rule: "r3"})
			}
			m.Preset(keys)
			get(t, h)
		}
	})
	wg.Wait()

	// r0 and r1 were never removed: their counts are complete.
	s := get(t, h)
	for _, r := range []string{"r0", "r1"} {
		var total float64
		for _, v := range []string{"next", "accept", "faccept"} {
			total += s.value(t, "vsl_rule_verdicts_total", "rule="+r+",stage=rcpt,verdict="+v)
		}
		if want := float64(workers / 4 * runs); total != want {
			t.Errorf("%s: %v runs counted, want %v", r, total, want)
		}
	}
	if got := s.value(t, "vsl_stage_duration_seconds", "stage=rcpt"); got != workers*runs {
		t.Errorf("rcpt stage observations = %v, want %d", got, workers*runs)
	}
}

func TestDirectiveDoesNotAllocate(t *testing.T) {
	m := metrics.New("test")
	m.Preset([]metrics.RuleKey{{Stage: "rcpt", Rule: "check relay"}})
	d := rule("check relay")
	err := errors.New("boom")
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"status", func() { m.Directive(policy.Rcpt, d, policy.Accept, nil, time.Microsecond) }},
		{"error", func() { m.Directive(policy.Rcpt, d, policy.Next, err, time.Microsecond) }},
		{"stage", func() { m.Stage(policy.Rcpt, policy.Verdict{}, time.Microsecond) }},
		{"transaction", func() { m.Transaction(metrics.OutcomeAccept) }},
	} {
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", tc.name, n)
		}
	}
}

func BenchmarkDirective(b *testing.B) {
	m := metrics.New("bench")
	var keys []metrics.RuleKey
	var ds []*policy.Directive
	for i := range 100 {
		name := fmt.Sprintf("rule %d", i)
		keys = append(keys, metrics.RuleKey{Stage: "rcpt", Rule: name})
		ds = append(ds, rule(name))
	}
	m.Preset(keys)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		m.Directive(policy.Rcpt, ds[i%len(ds)], policy.StatusKind(i%2), nil, time.Microsecond)
	}
}

func BenchmarkDirectiveParallel(b *testing.B) {
	m := metrics.New("bench")
	m.Preset([]metrics.RuleKey{{Stage: "rcpt", Rule: "check relay"}})
	d := rule("check relay")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Directive(policy.Rcpt, d, policy.Next, nil, time.Microsecond)
		}
	})
}

func BenchmarkStage(b *testing.B) {
	m := metrics.New("bench")
	b.ReportAllocs()
	for b.Loop() {
		m.Stage(policy.Rcpt, policy.Verdict{}, 120*time.Microsecond)
	}
}
