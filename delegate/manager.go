package delegate

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/policy/service"
)

// Metrics counts delegations; package metrics' Metrics is one.
type Metrics interface {
	// Delegation counts one delegation to the service named service that
	// ended with result (ResultSuccess, ResultTimeout, ...).
	Delegation(service, result string)
}

// Options configure a Manager.
type Options struct {
	// Hostname is the name said in EHLO to filters and in the receivers'
	// greeting; "" uses the machine's host name.
	Hostname string
	// MaxMessageBytes is the largest message a receiver takes back (0:
	// DefaultMaxMessageBytes).
	MaxMessageBytes int64
	// Clients are the networks filters may send messages back from
	// (empty: loopback only).
	Clients []netip.Prefix
	// Sink takes the messages that come back whose id the Manager's own
	// Waiters (RoundTrip, milter mode) do not know: the standalone spool
	// gives its persistent delegated queue and sends with Send. Nil: only
	// the Waiters.
	Sink Sink
	// Logger receives the receivers' lines (nil: none).
	Logger hclog.Logger
	// Metrics counts each RoundTrip's result (may be nil).
	Metrics Metrics
}

// Manager owns one Receiver per distinct receiver address of the rules'
// smtp services, and sends delegated messages to their filters. A receiver
// address need not be one the server otherwise listens on. Its methods are
// safe for concurrent use.
type Manager struct {
	opts    Options
	log     hclog.Logger
	client  Client
	waiters *Waiters
	sink    Sink // the Waiters, then Options.Sink

	mu        sync.Mutex
	receivers map[string]*Receiver
	closed    bool
}

// NewManager returns a Manager that listens nowhere yet: Start listens on
// the receiver addresses of a rule set, and RoundTrip and Send on the one
// they need.
func NewManager(opts Options) *Manager {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	m := &Manager{opts: opts, log: log, client: Client{Hostname: opts.Hostname}, receivers: map[string]*Receiver{}}
	m.waiters = NewWaiters()
	m.sink = m.waiters
	if opts.Sink != nil {
		m.sink = chainSink{m.waiters, opts.Sink}
	}
	return m
}

// Services returns the distinct smtp services of the delegate directives
// of rules, in stage and directive order.
func Services(rules *policy.Rules) []*service.SMTP {
	var out []*service.SMTP
	seen := map[*service.SMTP]bool{}
	for _, st := range policy.Stages() {
		for _, d := range rules.Directives(st) {
			if d.Kind != policy.DelegateKind {
				continue
			}
			if svc, ok := d.Service.AsHost().(*service.SMTP); ok && !seen[svc] {
				seen[svc] = true
				out = append(out, svc)
			}
		}
	}
	return out
}

// Start listens on the receiver address of every delegate directive of
// rules that has no Receiver yet (at start-up, and again after a reload:
// receivers the new rules no longer use keep serving until Close, for the
// delegations still in flight). The receivers it could open serve even
// when others fail; the errors are joined.
func (m *Manager) Start(rules *policy.Rules) error {
	var errs []error
	for _, svc := range Services(rules) {
		if _, err := m.Listen(svc.Receiver); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", svc.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Listen returns the Receiver on addr, starting it if needed.
func (m *Manager) Listen(addr string) (*Receiver, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if r, ok := m.receivers[addr]; ok {
		return r, nil
	}
	r, err := Listen(addr, m.sink, ReceiverOptions{
		Hostname: m.opts.Hostname, MaxMessageBytes: m.opts.MaxMessageBytes, Clients: m.opts.Clients,
		Logger: m.log,
	})
	if err != nil {
		return nil, err
	}
	m.receivers[addr] = r
	m.log.Info("delegation receiver listening", "receiver", addr)
	return r, nil
}

// Receivers returns the receiver addresses listened on, sorted.
func (m *Manager) Receivers() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.receivers))
	for a := range m.receivers {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Send makes sure the delegation's receiver listens, then sends msg to
// its filter (Client.Send). It is for a Manager whose Sink is the caller's
// own (the spool's delegated queue), registered before the call.
func (m *Manager) Send(ctx context.Context, d *policy.Delegation, from policy.MailAddr, rcpts []policy.MailAddr, msg []byte) error {
	if d == nil || d.Service == nil {
		return errors.New("delegate: the delegation names no smtp service")
	}
	if _, err := m.Listen(d.Service.Receiver); err != nil {
		return err
	}
	return m.client.Send(ctx, d, from, rcpts, msg)
}

// RoundTrip hands msg to the filter of delegation d and waits for it to
// come back on the service's receiver: it registers d.ID, sends the
// message (Client.Send), and returns the message the filter sent back. The
// whole round trip is bounded by the service's timeout and by ctx; a
// message that is not back by then is an error wrapping ErrTimeout (or
// ctx's cause). The result is counted in Options.Metrics.
func (m *Manager) RoundTrip(ctx context.Context, d *policy.Delegation, from policy.MailAddr, rcpts []policy.MailAddr, msg []byte) (Returned, error) {
	r, err := m.roundTrip(ctx, d, from, rcpts, msg)
	if m.opts.Metrics != nil && d != nil && d.Service != nil {
		m.opts.Metrics.Delegation(d.Service.Name, Result(err))
	}
	return r, err
}

func (m *Manager) roundTrip(ctx context.Context, d *policy.Delegation, from policy.MailAddr, rcpts []policy.MailAddr, msg []byte) (Returned, error) {
	if d == nil || d.Service == nil {
		return Returned{}, errors.New("delegate: the delegation names no smtp service")
	}
	svc := d.Service
	var cancel context.CancelFunc
	if svc.Timeout > 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, svc.Timeout, ErrTimeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel() // ends the registration
	if _, err := m.Listen(svc.Receiver); err != nil {
		return Returned{}, err
	}
	back, err := m.waiters.Wait(ctx, d.ID)
	if err != nil {
		return Returned{}, err
	}
	if err := m.client.Send(ctx, d, from, rcpts, msg); err != nil {
		select {
		case r := <-back: // a proxying filter returned it, then failed
			return r, nil
		default:
			return Returned{}, err
		}
	}
	select {
	case r := <-back:
		return r, nil
	case <-ctx.Done():
		select {
		case r := <-back:
			return r, nil
		default:
		}
		return Returned{}, fmt.Errorf("waiting on %s for the message back from %s: %w", svc.Receiver, svc.Address, context.Cause(ctx))
	}
}

// Delegate is RoundTrip returning the header and body of the message the
// filter sent back, as policy.Session.Resume takes them (the milter's
// Delegator).
func (m *Manager) Delegate(ctx context.Context, d *policy.Delegation, from policy.MailAddr, rcpts []policy.MailAddr, msg []byte) ([]policy.Header, []byte, error) {
	r, err := m.RoundTrip(ctx, d, from, rcpts, msg)
	if err != nil {
		return nil, nil, err
	}
	return r.Headers, r.Body, nil
}

// Close closes every receiver: the sessions in progress may end until ctx
// does. Later calls to Listen, Send and RoundTrip fail with ErrClosed.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	rs := m.receivers
	m.receivers = map[string]*Receiver{}
	m.mu.Unlock()
	var errs []error
	for _, r := range rs {
		errs = append(errs, r.Close(ctx))
	}
	return errors.Join(errs...)
}

// chainSink hands a returned message to its first Sink, and to the
// second when the first knows no delegation with its id: the milter's
// Waiters and the spool's delegated queue share the receivers.
type chainSink struct{ first, second Sink }

func (c chainSink) Return(ctx context.Context, m Returned) error {
	err := c.first.Return(ctx, m)
	if errors.Is(err, ErrUnknownID) {
		return c.second.Return(ctx, m)
	}
	return err
}
