package spool

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/delivery"
	"github.com/vsl-milter/vsl-milter/policy"
)

// Defaults for the zero values of Options.
const (
	DefaultRetryPeriod = 5 * time.Minute
	DefaultWorkers     = 8
	// maxRetryDelay caps the backoff (unless RetryPeriod is longer): with
	// the defaults, 100 retries take about four days, as long as other
	// MTAs keep a message.
	maxRetryDelay = time.Hour
)

// Options configure a Spool.
type Options struct {
	// Dir is server.queues.dirpath: the queue directories live below it.
	Dir string
	// AppDir is app.dirpath: quarantined messages go to AppDir/<name>/.
	// Empty: quarantining fails (temporarily, for messages in the spool).
	AppDir string
	// Rules returns the rules to run the postq and delivery stages with;
	// it is called for each message, so a reload applies to the next one.
	// nil, or a nil result: no rules run and every recipient is delivered
	// by MX.
	Rules func() *policy.Rules
	// SessionOpts are the options of the resumed sessions (on_error, the
	// stage deadline, the observer, the rules' log).
	SessionOpts policy.SessionOptions
	// Agent delivers the copies (maildir, mbox, forward, and the SMTP
	// sessions of MX delivery). Required.
	Agent *delivery.Agent
	// Resolver looks up MX records; nil means net.DefaultResolver. Tests
	// and the [resolver] mx overrides (StaticMX) replace it.
	Resolver MXResolver
	// Hostname names this host in DSNs (Reporting-MTA, MAILER-DAEMON@);
	// the machine's host name when empty.
	Hostname string
	// RetryPeriod is server.queues.delivery.deferred_retry_period: the
	// delay before the first retry, doubled for each later one up to an
	// hour (or RetryPeriod, if longer). Zero means DefaultRetryPeriod.
	RetryPeriod time.Duration
	// RetryMax is deferred_retry_max: how many times a temporarily failing
	// message is tried again before it goes to the dead queue and its
	// sender gets a DSN. Zero means no retry.
	RetryMax int
	// Workers is how many messages are processed at once; zero means
	// DefaultWorkers.
	Workers int
	// Logger receives the spool's log; nil discards it.
	Logger hclog.Logger
	// Metrics, when set, is told the size of each queue as it changes;
	// when it also has a Delegation(service, result string) method (as
	// package metrics' Metrics does), each delegation's result.
	Metrics Metrics
	// Delegator sends the messages of delegate directives to their
	// filters (a delegate.Manager whose Sink routes the spool's returns
	// to Spool.Return). Nil: a delegation fails, as a script error
	// (on_error).
	Delegator Delegator
}

// Delegator sends a delegated message to the filter of a delegation;
// *delegate.Manager is one.
type Delegator interface {
	Send(ctx context.Context, d *policy.Delegation, from policy.MailAddr, rcpts []policy.MailAddr, msg []byte) error
}

// Metrics receives the spool's gauges.
type Metrics interface {
	// SpoolSize reports the number of messages in a queue (incoming,
	// working, deferred, dead).
	SpoolSize(queue string, n int)
}

// Spool is the mail queue of the standalone server. Enqueue and
// Quarantine may be called from any goroutine; Run does the work.
type Spool struct {
	opts     Options
	log      hclog.Logger
	resolver MXResolver
	lock     *os.File
	sched    scheduler
	running  atomic.Bool
	closed   atomic.Bool

	mu     sync.Mutex
	counts map[string]int
	live   map[string]bool // the ids of every message directory

	dmu       sync.Mutex
	busy      map[string]bool     // the ids a worker holds; true: wake it again after
	delegated map[string]string   // delegation id → message id, for the delegations waiting
	ended     map[string]struct{} // delegation ids that came back or were given up
}

// Open opens the spool below opts.Dir, creating its directories, and
// recovers it: leftovers of interrupted writes are removed, and every
// message found in incoming/, working/ and deferred/ is scheduled again
// (deferred ones at their next attempt), to be processed once Run runs.
// The spool is locked against other processes until Close.
func Open(opts Options) (*Spool, error) {
	if opts.Dir == "" {
		return nil, errors.New("spool: no directory given")
	}
	if opts.Agent == nil {
		return nil, errors.New("spool: no delivery agent given")
	}
	if opts.RetryMax < 0 {
		return nil, fmt.Errorf("spool: negative retry maximum %d", opts.RetryMax)
	}
	if opts.RetryPeriod < 0 {
		return nil, fmt.Errorf("spool: negative retry period %v", opts.RetryPeriod)
	}
	if opts.RetryPeriod == 0 {
		opts.RetryPeriod = DefaultRetryPeriod
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("spool: no hostname given and the machine's is unknown: %w", err)
		}
		opts.Hostname = h
	}
	if strings.ContainsFunc(opts.Hostname, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '<' || r == '>' }) {
		return nil, fmt.Errorf("spool: hostname %q contains spaces, control characters or angle brackets", opts.Hostname)
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	abs, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	opts.Dir = abs
	s := &Spool{
		opts: opts, log: opts.Logger, resolver: opts.Resolver,
		counts: map[string]int{}, live: map[string]bool{},
		busy: map[string]bool{}, delegated: map[string]string{}, ended: map[string]struct{}{},
	}
	if s.resolver == nil {
		s.resolver = net.DefaultResolver
	}
	s.sched.init()
	if err := mkdirSync(opts.Dir); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if s.lock, err = lockDir(opts.Dir); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := s.recover(); err != nil {
		s.lock.Close()
		return nil, fmt.Errorf("spool: recovery: %w", err)
	}
	return s, nil
}

// recover empties tmp/, removes half-written files from the message
// directories and schedules every message that is not dead.
func (s *Spool) recover() error {
	for _, d := range append([]string{tmpDir}, queues[:]...) {
		if err := mkdirSync(filepath.Join(s.opts.Dir, d)); err != nil {
			return err
		}
	}
	tmp := filepath.Join(s.opts.Dir, tmpDir)
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("read %s: %w", tmp, err)
	}
	for _, e := range ents {
		// Interrupted enqueues (never acknowledged) and removals.
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("clean %s: %w", tmp, err)
		}
	}
	now := time.Now()
	for _, q := range queues {
		ents, err := os.ReadDir(s.path(q))
		if err != nil {
			return fmt.Errorf("read queue %s: %w", q, err)
		}
		for _, e := range ents {
			id := e.Name()
			if !e.IsDir() || !validStoredID(id) {
				s.log.Warn("not a message directory, left alone", "queue", q, "name", id)
				continue
			}
			s.live[id] = true
			s.counts[q]++
			if q == QueueDead {
				continue
			}
			s.cleanTemp(q, id)
			// Deferred messages wait for their next attempt (as does one
			// whose move to deferred/ a crash cut short); unreadable ones
			// are left to the worker, which moves them to dead/.
			due := now
			if q == QueueDelegated {
				due = s.recoverDelegated(id, now)
			} else if m, err := s.load(q, id); err == nil && m.st.NextAttempt.After(now) {
				due = m.st.NextAttempt
			}
			s.sched.add(job{id: id, queue: q}, due)
		}
	}
	for _, q := range queues {
		s.report(q, s.counts[q])
	}
	if n := s.counts[QueueIncoming] + s.counts[QueueWorking] + s.counts[QueueDeferred] + s.counts[QueueDelegated]; n > 0 {
		s.log.Info("recovered messages", "incoming", s.counts[QueueIncoming],
			"working", s.counts[QueueWorking], "deferred", s.counts[QueueDeferred],
			"delegated", s.counts[QueueDelegated], "dead", s.counts[QueueDead])
	}
	return nil
}

// cleanTemp removes the temporary files of an interrupted state write.
func (s *Spool) cleanTemp(queue, id string) {
	ents, err := os.ReadDir(s.path(queue, id))
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), tmpSuffix) {
			os.Remove(s.path(queue, id, e.Name()))
		}
	}
}

// Close releases the spool directory's lock. Call it after Run returned;
// Enqueue fails afterwards.
func (s *Spool) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.lock.Close(); err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	return nil
}

// Enqueue adds an accepted message to the spool: message is the whole
// message with CRLF line ends, as the preq stage left it (the bytes
// received, or Transaction.MessageText() if the rules changed them), saved
// the transaction (Transaction.Save()). When it returns nil the message
// and its envelope are on disk, fsynced, and will be processed even if the
// process is killed right after: the SMTP server may answer 250. An error
// means nothing was kept (answer 451). The id is saved.MessageID when that
// is a valid file name (letters, digits, '-', '_') not in use, otherwise a
// new one.
func (s *Spool) Enqueue(ctx context.Context, saved policy.Saved, message []byte) (string, error) {
	return s.enqueue(ctx, saved, message, "")
}

// enqueue is Enqueue; a non-empty fixedID is a DSN's id: it is used as
// the id, and a message already in the spool under that id is not written
// again.
func (s *Spool) enqueue(ctx context.Context, saved policy.Saved, message []byte, fixedID string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("spool: enqueue: %w", err)
	}
	if s.closed.Load() {
		return "", errors.New("spool: enqueue: the spool is closed")
	}
	if len(saved.Rcpts) == 0 {
		return "", errors.New("spool: enqueue: no recipients")
	}
	id := fixedID
	if id == "" {
		id = saved.MessageID
		if !validID(id) || !s.reserve(id) {
			for id = policy.NewMessageID(); !s.reserve(id); id = policy.NewMessageID() {
			}
		}
	} else if !s.reserve(id) {
		return id, nil // queued before
	}
	env := envelope{Saved: saved, EnqueuedAt: time.Now().UTC()}
	if fixedID != "" {
		env.Kind = kindDSN
	}
	if err := s.create(id, env, message); err != nil {
		s.forget(id)
		return "", fmt.Errorf("spool: enqueue: %w", err)
	}
	s.counted(QueueIncoming, +1)
	s.sched.add(job{id: id, queue: QueueIncoming}, time.Time{})
	s.log.Debug("enqueued", "id", id, "from", saved.MailFrom.String(), "rcpts", len(saved.Rcpts), "size", len(message))
	return id, nil
}

// reserve claims an id for a new message; false when it is in use.
func (s *Spool) reserve(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live[id] {
		return false
	}
	s.live[id] = true
	return true
}

// forget releases the id of a message that left the spool.
func (s *Spool) forget(id string) {
	s.mu.Lock()
	delete(s.live, id)
	s.mu.Unlock()
}

// Stats returns the number of messages in each queue: incoming, working,
// deferred, delegated and dead.
func (s *Spool) Stats() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(queues))
	for _, q := range queues {
		out[q] = s.counts[q]
	}
	return out
}

// counted changes a queue's count.
func (s *Spool) counted(queue string, delta int) {
	s.mu.Lock()
	s.counts[queue] += delta
	n := s.counts[queue]
	s.mu.Unlock()
	s.report(queue, n)
}

func (s *Spool) report(queue string, n int) {
	if s.opts.Metrics != nil {
		s.opts.Metrics.SpoolSize(queue, n)
	}
}

// Run processes the spool's messages with Options.Workers workers: the
// postq and delivery stages, then the deliveries, retries and DSNs. It
// returns nil when ctx ends, once every worker has stopped: work in
// flight is cut short and stays on disk, to be resumed by a later Run or
// after a restart. Only one Run may be active at a time.
func (s *Spool) Run(ctx context.Context) error {
	if s.closed.Load() {
		return errors.New("spool: Run: the spool is closed")
	}
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("spool: Run is already running")
	}
	defer s.running.Store(false)
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range s.opts.Workers {
		wg.Go(func() {
			for j := range jobs {
				s.process(ctx, j)
			}
		})
	}
	s.dispatch(ctx, jobs)
	close(jobs)
	wg.Wait()
	return nil
}

// dispatch hands due jobs to the workers until ctx ends.
func (s *Spool) dispatch(ctx context.Context, jobs chan<- job) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		j, ok, next := s.sched.take(time.Now())
		if ok {
			select {
			case jobs <- j:
				continue
			case <-ctx.Done():
				s.sched.add(j, time.Time{})
				return
			}
		}
		var wait <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next))
			wait = timer.C
		}
		select {
		case <-s.sched.wake:
		case <-wait:
		case <-ctx.Done():
			return
		}
		timer.Stop()
	}
}

// job is a message to process: its id and the queue it is in.
type job struct {
	id    string
	queue string
}

// scheduler holds the jobs waiting for a worker: due ones in arrival
// order, deferred ones by due time. Each message is in it at most once:
// a job leaves it to a worker, which puts it back only if the message
// needs another attempt.
type scheduler struct {
	mu    sync.Mutex
	ready []job
	timed timedJobs
	wake  chan struct{}
}

func (q *scheduler) init() { q.wake = make(chan struct{}, 1) }

// add schedules j at due (zero or past: now).
func (q *scheduler) add(j job, due time.Time) {
	q.mu.Lock()
	if due.IsZero() || !due.After(time.Now()) {
		q.ready = append(q.ready, j)
	} else {
		heap.Push(&q.timed, timedJob{job: j, due: due})
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns the next due job, or the time the next one is due (zero:
// none is waiting).
func (q *scheduler) take(now time.Time) (j job, ok bool, next time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.timed) > 0 && !q.timed[0].due.After(now) {
		q.ready = append(q.ready, heap.Pop(&q.timed).(timedJob).job)
	}
	if len(q.ready) > 0 {
		j = q.ready[0]
		q.ready[0] = job{}
		q.ready = q.ready[1:]
		return j, true, time.Time{}
	}
	if len(q.timed) > 0 {
		next = q.timed[0].due
	}
	return job{}, false, next
}

// timedJob is a job due at a time.
type timedJob struct {
	job
	due time.Time
}

// timedJobs is a min-heap of jobs by due time.
type timedJobs []timedJob

func (h timedJobs) Len() int           { return len(h) }
func (h timedJobs) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h timedJobs) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timedJobs) Push(x any)        { *h = append(*h, x.(timedJob)) }
func (h *timedJobs) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// backoff is the delay after the n-th temporarily failed attempt (n ≥ 1):
// RetryPeriod doubled n-1 times, at most max(maxRetryDelay, RetryPeriod).
func (s *Spool) backoff(n int) time.Duration {
	limit := max(maxRetryDelay, s.opts.RetryPeriod)
	d := s.opts.RetryPeriod
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
