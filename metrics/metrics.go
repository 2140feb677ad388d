// Package metrics exports the Prometheus metrics of vsl-milter: a counter
// per rule and verdict, script errors per rule, stage durations,
// transactions by outcome, milter sessions, configuration reloads,
// delegations and spool sizes, plus the Go runtime, process and build
// information collectors.
//
// A Metrics owns its own registry (the global default registry is never
// touched) and serves it, with liveness and readiness probes, from
// Handler. It implements policy.Observer so the rule runner can feed it
// directly; the per-rule series are cached so that one rule run costs a
// map lookup and an atomic add, without allocating.
//
// The package knows the mail layer's types only to label them: it does not
// run rules, read configuration or decide anything.
package metrics

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vsl-milter/vsl-milter/policy"
)

// namespace prefixes every metric of the application.
const namespace = "vsl"

// The transaction outcomes counted by Transaction. They are the only values
// the outcome label should take, so that its cardinality stays bounded.
const (
	OutcomeAccept     = "accept"
	OutcomeReject     = "reject"
	OutcomeTempfail   = "tempfail"
	OutcomeDiscard    = "discard"
	OutcomeQuarantine = "quarantine"
)

// outcomes are the transaction outcomes created at zero by New.
var outcomes = [...]string{OutcomeAccept, OutcomeReject, OutcomeTempfail, OutcomeDiscard, OutcomeQuarantine}

// VerdictError is the verdict label of a directive run that ended in a
// script error.
const VerdictError = "error"

// statuses are the statuses a directive can give, in StatusKind order; the
// verdict label of a run is the status's name. A status missing from this
// list (added to policy later) is still counted, through the slow path.
var statuses = [...]policy.StatusKind{
	policy.Next, policy.Accept, policy.Faccept, policy.Deny,
	policy.Reject, policy.Info, policy.Quarantine, policy.Delegated,
}

// stageBuckets are the upper bounds of the stage duration histogram, in
// seconds: a stage of plain rules takes microseconds, one that calls DNS
// or a filter service can take seconds.
var stageBuckets = []float64{
	10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
	1, 2.5, 5, 10, 30,
}

// RuleKey names a directive of the loaded rules: its stage and name, as
// the stage and rule labels spell them (policy.Stage.String() and
// policy.Directive.Name).
type RuleKey struct {
	Stage string
	Rule  string
}

// ruleKey is the cache key of a directive on the hot path.
type ruleKey struct {
	stage policy.Stage
	rule  string
}

// ruleSeries holds the counters of one directive, resolved once.
type ruleSeries struct {
	verdicts [len(statuses)]prometheus.Counter // by StatusKind
	errored  prometheus.Counter                // verdict="error"
	errors   prometheus.Counter                // vsl_rule_errors_total
}

// ruleTable maps a directive to its counters. A table is never modified
// once published: writers copy it.
type ruleTable map[ruleKey]*ruleSeries

// Metrics holds the application's collectors and their registry. Its
// methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	verdicts     *prometheus.CounterVec
	ruleErrors   *prometheus.CounterVec
	stageSeconds *prometheus.HistogramVec
	transactions *prometheus.CounterVec
	sessions     prometheus.Gauge
	smtpSessions prometheus.Gauge
	reloads      *prometheus.CounterVec
	reloadOK     prometheus.Gauge
	reloadTime   prometheus.Gauge
	delegations  *prometheus.CounterVec
	spool        *prometheus.GaugeVec

	// stageObs caches the histogram of each stage, by policy.Stage.
	stageObs []prometheus.Observer
	// outcomeCnt caches the counters of the known outcomes.
	outcomeCnt map[string]prometheus.Counter

	// rules is the current ruleTable, read without locking on the hot
	// path; mu serialises the writers (Preset and first hits).
	rules atomic.Pointer[ruleTable]
	mu    sync.Mutex
}

// New creates the metrics of one process, registered in a new registry
// together with the Go runtime and process collectors and
// vsl_build_info{version, goversion}. version is the application's
// version string.
func New(version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "rule_verdicts_total",
			Help:      "Runs of each rule, action and delegate directive, by stage, directive name and the status it gave (next for actions; error when the script failed).",
		}, []string{"stage", "rule", "verdict"}),
		ruleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "rule_errors_total",
			Help:      "Script errors (runtime error, exhausted budget, passed deadline, panic) raised by each directive, by stage and directive name.",
		}, []string{"stage", "rule"}),
		stageSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "stage_duration_seconds",
			Help:      "Time spent running the directives of a stage for one transaction, in seconds (stages skipped or without directives are not observed).",
			Buckets:   stageBuckets,
		}, []string{"stage"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "transactions_total",
			Help:      "Mail transactions finished, by the outcome answered to the MTA or client: accept, reject, tempfail, discard or quarantine.",
		}, []string{"outcome"}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "milter_sessions",
			Help:      "Milter sessions (MTA connections) currently open.",
		}),
		smtpSessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "smtp_sessions",
			Help:      "SMTP client connections the standalone server currently serves.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "config_reloads_total",
			Help:      "Configuration and rule (re)loads, by result: success or failure (a failed reload keeps the previous rules).",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "config_last_reload_successful",
			Help:      "Whether the last configuration (re)load succeeded (1) or failed (0).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "config_last_reload_success_timestamp_seconds",
			Help:      "Unix time of the last successful configuration (re)load.",
		}),
		delegations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "delegations_total",
			Help:      "Messages handed to a filter service by a delegate directive, by service name and result.",
		}, []string{"service", "result"}),
		spool: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "spool_messages",
			Help:      "Messages held in each spool queue of the standalone server.",
		}, []string{"queue"}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   namespace,
		Name:        "build_info",
		Help:        "Build information of the running binary: always 1, labelled with the application version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)

	m.reg.MustRegister(
		m.verdicts, m.ruleErrors, m.stageSeconds, m.transactions, m.sessions, m.smtpSessions,
		m.reloads, m.reloadOK, m.reloadTime, m.delegations, m.spool, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	for _, st := range policy.Stages() {
		m.stageObs = append(m.stageObs, m.stageSeconds.WithLabelValues(st.String()))
	}
	m.outcomeCnt = make(map[string]prometheus.Counter, len(outcomes))
	for _, o := range outcomes {
		m.outcomeCnt[o] = m.transactions.WithLabelValues(o)
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	empty := ruleTable{}
	m.rules.Store(&empty)
	return m
}

// Registry returns the registry holding every collector, for a caller that
// adds its own or serves it another way.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Directive implements policy.Observer: it counts one run of d in
// vsl_rule_verdicts_total under the status it gave, or under "error" (and
// in vsl_rule_errors_total) when err is set. It does not allocate once the
// directive's series exist (after Preset or its first run).
func (m *Metrics) Directive(stage policy.Stage, d *policy.Directive, status policy.StatusKind, err error, _ time.Duration) {
	rs := m.series(stage, d.Name)
	switch {
	case err != nil:
		rs.errored.Inc()
		rs.errors.Inc()
	case int(status) < len(rs.verdicts):
		rs.verdicts[status].Inc()
	default:
		m.verdicts.WithLabelValues(stage.String(), d.Name, status.String()).Inc()
	}
}

// Stage implements policy.Observer: it observes the time the stage's
// directives took in vsl_stage_duration_seconds.
func (m *Metrics) Stage(stage policy.Stage, _ policy.Verdict, elapsed time.Duration) {
	if int(stage) < len(m.stageObs) {
		m.stageObs[stage].Observe(elapsed.Seconds())
		return
	}
	m.stageSeconds.WithLabelValues(stage.String()).Observe(elapsed.Seconds())
}

// series returns the counters of the directive named rule in stage,
// creating them on its first run.
func (m *Metrics) series(stage policy.Stage, rule string) *ruleSeries {
	if rs, ok := (*m.rules.Load())[ruleKey{stage, rule}]; ok {
		return rs
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.rules.Load()
	k := ruleKey{stage, rule}
	if rs, ok := old[k]; ok {
		return rs
	}
	next := make(ruleTable, len(old)+1)
	for kk, rs := range old {
		next[kk] = rs
	}
	rs := m.newSeries(stage.String(), rule)
	next[k] = rs
	m.rules.Store(&next)
	return rs
}

// newSeries resolves (and so creates at zero) every series of a directive.
func (m *Metrics) newSeries(stage, rule string) *ruleSeries {
	rs := &ruleSeries{
		errored: m.verdicts.WithLabelValues(stage, rule, VerdictError),
		errors:  m.ruleErrors.WithLabelValues(stage, rule),
	}
	for i, st := range statuses {
		rs.verdicts[i] = m.verdicts.WithLabelValues(stage, rule, st.String())
	}
	return rs
}

// Preset makes the per-rule series match the loaded rules, to be called
// after each successful (re)load: every directive of rules gets its
// vsl_rule_verdicts_total series (one per status and error) and its
// vsl_rule_errors_total series at zero, so that dashboards list it before
// its first run, and the series of directives no longer loaded are
// removed. Counts of directives kept across the reload are preserved. A
// key whose stage is not a stage name is ignored.
func (m *Metrics) Preset(rules []RuleKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.rules.Load()
	next := make(ruleTable, len(rules))
	for _, r := range rules {
		st, ok := policy.ParseStage(r.Stage)
		if !ok {
			continue
		}
		k := ruleKey{st, r.Rule}
		if _, dup := next[k]; dup {
			continue
		}
		if rs, ok := old[k]; ok {
			next[k] = rs
			continue
		}
		next[k] = m.newSeries(st.String(), r.Rule)
	}
	for k := range old {
		if _, kept := next[k]; kept {
			continue
		}
		labels := prometheus.Labels{"stage": k.stage.String(), "rule": k.rule}
		m.verdicts.DeletePartialMatch(labels)
		m.ruleErrors.DeletePartialMatch(labels)
	}
	m.rules.Store(&next)
}

// Transaction counts a finished transaction in vsl_transactions_total.
// outcome should be one of the Outcome constants.
func (m *Metrics) Transaction(outcome string) {
	if c, ok := m.outcomeCnt[outcome]; ok {
		c.Inc()
		return
	}
	m.transactions.WithLabelValues(outcome).Inc()
}

// SessionOpened counts a new session in vsl_milter_sessions.
func (m *Metrics) SessionOpened() { m.sessions.Inc() }

// SessionClosed counts a session's end in vsl_milter_sessions.
func (m *Metrics) SessionClosed() { m.sessions.Dec() }

// SMTP returns the view of m the standalone SMTP server counts with: the
// same metrics, except that its sessions go to vsl_smtp_sessions.
func (m *Metrics) SMTP() SMTPMetrics { return SMTPMetrics{m} }

// SMTPMetrics is Metrics as the SMTP server sees it (Metrics.SMTP).
type SMTPMetrics struct{ *Metrics }

// SessionOpened counts a new SMTP session in vsl_smtp_sessions.
func (s SMTPMetrics) SessionOpened() { s.smtpSessions.Inc() }

// SessionClosed counts an SMTP session's end in vsl_smtp_sessions.
func (s SMTPMetrics) SessionClosed() { s.smtpSessions.Dec() }

// Loaded records the configuration loaded at start-up, as Prometheus
// records its own: vsl_config_last_reload_successful becomes 1 and
// vsl_config_last_reload_success_timestamp_seconds now, without counting a
// reload, so that an alert on a failed reload does not fire on an instance
// never reloaded.
func (m *Metrics) Loaded() {
	m.reloadOK.Set(1)
	m.reloadTime.SetToCurrentTime()
}

// Reload counts a configuration (re)load in vsl_config_reloads_total: a
// failure when err is set, else a success, which also sets
// vsl_config_last_reload_success_timestamp_seconds to now.
// vsl_config_last_reload_successful tells which of the two happened last.
func (m *Metrics) Reload(err error) {
	if err != nil {
		m.reloads.WithLabelValues("failure").Inc()
		m.reloadOK.Set(0)
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.reloadOK.Set(1)
	m.reloadTime.SetToCurrentTime()
}

// Delegation counts a message handed to the filter service named service
// in vsl_delegations_total, with the result of the hand-over (such as
// "success", "failure" or "timeout").
func (m *Metrics) Delegation(service, result string) {
	m.delegations.WithLabelValues(service, result).Inc()
}

// SpoolSize sets the number of messages in the spool queue named queue
// (vsl_spool_messages), in standalone mode.
func (m *Metrics) SpoolSize(queue string, n int) {
	m.spool.WithLabelValues(queue).Set(float64(n))
}

// Compile-time check that Metrics feeds the rule runner.
var _ policy.Observer = (*Metrics)(nil)
