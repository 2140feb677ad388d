package spool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"

	"github.com/vsl-milter/vsl-milter/delivery"
	"github.com/vsl-milter/vsl-milter/policy"
)

// maxGroups bounds the recipient groups (the local copies, one group per
// MX domain) one message delivers at once.
const maxGroups = 8

// MXResolver looks up the mail exchangers of a domain; *net.Resolver is
// one. A record's Host may carry a port ("127.0.0.1:2525"), as the
// [resolver] mx overrides and tests need; otherwise port 25 is used.
//
// When the resolver also has LookupHost (as *net.Resolver does), a domain
// with neither MX nor address records fails permanently at once;
// otherwise the domain is tried as its own mail exchanger and the
// connection's failure is temporary.
type MXResolver interface {
	LookupMX(ctx context.Context, domain string) ([]*net.MX, error)
}

// hostResolver is the optional address lookup of an MXResolver.
type hostResolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// StaticMX returns a resolver that answers each domain of table (lower
// case, without a trailing dot) with one MX record naming its "host:port"
// and asks next about the others (net.DefaultResolver when nil): the
// [resolver] mx section of the configuration.
func StaticMX(table map[string]string, next MXResolver) MXResolver {
	if next == nil {
		next = net.DefaultResolver
	}
	t := make(map[string]string, len(table))
	for k, v := range table {
		t[strings.TrimSuffix(strings.ToLower(k), ".")] = v
	}
	return &staticMX{table: t, next: next}
}

type staticMX struct {
	table map[string]string
	next  MXResolver
}

// LookupMX answers from the table, or asks the next resolver.
func (r *staticMX) LookupMX(ctx context.Context, domain string) ([]*net.MX, error) {
	if t, ok := r.table[strings.TrimSuffix(strings.ToLower(domain), ".")]; ok {
		return []*net.MX{{Host: t, Pref: 0}}, nil
	}
	return r.next.LookupMX(ctx, domain)
}

// LookupHost asks the next resolver, when it can.
func (r *staticMX) LookupHost(ctx context.Context, host string) ([]string, error) {
	if h, ok := r.next.(hostResolver); ok {
		return h.LookupHost(ctx, host)
	}
	return []string{host}, nil
}

// result is what became of one recipient in a round: fail is nil when the
// copy was delivered.
type result struct {
	fail   *failure
	remote string
}

// deliver tries the pending recipients of m once: the local copies
// (maildir, mbox, forward) in one delivery.Agent call, and each domain of
// the deliver recipients by MX, concurrently. Each group's results go to
// record as soon as the group is done.
func (s *Spool) deliver(ctx context.Context, msg []byte, m *message, record func(map[int]result)) {
	var (
		local   []int
		domains = map[string][]int{}
		order   []string
		bad     = map[int]result{}
	)
	for i, r := range m.st.Rcpts {
		if r.Status != statusPending {
			continue
		}
		t, ok := parseTransport(r.Transport)
		switch {
		case !ok:
			bad[i] = result{fail: &failure{Status: "5.3.5", Error: fmt.Sprintf("unknown transport %q", r.Transport)}}
		case t == policy.Deliver:
			d := strings.TrimSuffix(strings.ToLower(r.Rcpt.Domain), ".")
			if _, seen := domains[d]; !seen {
				order = append(order, d)
			}
			domains[d] = append(domains[d], i)
		default:
			local = append(local, i)
		}
	}
	if len(bad) > 0 {
		record(bad)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxGroups)
	group := func(f func() map[int]result) {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			record(f())
		})
	}
	if len(local) > 0 {
		group(func() map[int]result { return s.deliverLocal(ctx, msg, m, local) })
	}
	for _, d := range order {
		group(func() map[int]result { return s.deliverMX(ctx, msg, m, d, domains[d]) })
	}
	wg.Wait()
}

// deliverLocal hands the maildir, mbox and forward copies to the agent.
func (s *Spool) deliverLocal(ctx context.Context, msg []byte, m *message, idx []int) map[int]result {
	choices := make([]policy.DeliveryChoice, len(idx))
	for j, i := range idx {
		r := m.st.Rcpts[i]
		t, _ := parseTransport(r.Transport)
		choices[j] = policy.DeliveryChoice{Rcpt: r.Rcpt, Transport: t, Target: r.Target}
	}
	fails := s.agentDeliver(ctx, msg, m.st.From, choices)
	out := make(map[int]result, len(idx))
	for j, i := range idx {
		var remote string
		if choices[j].Transport == policy.Forward {
			remote = choices[j].Target
		}
		if f := fails[j]; f != nil {
			out[i] = result{fail: toFailure(f, remote), remote: remote}
		} else {
			out[i] = result{remote: remote}
		}
	}
	return out
}

// agentDeliver calls the agent and returns each choice's failure (nil:
// delivered), in the order of choices.
func (s *Spool) agentDeliver(ctx context.Context, msg []byte, from policy.MailAddr, choices []policy.DeliveryChoice) []*delivery.Failure {
	out := make([]*delivery.Failure, len(choices))
	err := s.opts.Agent.Deliver(ctx, msg, from, choices)
	if err == nil {
		return out
	}
	var de *delivery.Error
	if !errors.As(err, &de) {
		for j, c := range choices {
			out[j] = &delivery.Failure{Rcpt: c.Rcpt, Transport: c.Transport, Temporary: true, Err: err}
		}
		return out
	}
	// The failures come in the order of choices, each choice at most once.
	j := 0
	for k := range de.Failures {
		f := &de.Failures[k]
		for j < len(choices) && choices[j].Rcpt != f.Rcpt {
			j++
		}
		if j == len(choices) {
			break
		}
		out[j] = f
		j++
	}
	return out
}

// deliverMX delivers the copies of one domain's recipients by SMTP to the
// domain's mail exchangers, in preference order: a host's temporary
// failures are tried at the next host, its permanent ones (5xx) are final.
func (s *Spool) deliverMX(ctx context.Context, msg []byte, m *message, domain string, idx []int) map[int]result {
	out := make(map[int]result, len(idx))
	hosts, f := s.mailExchangers(ctx, domain)
	if f != nil {
		for _, i := range idx {
			out[i] = result{fail: f}
		}
		return out
	}
	pending := idx
	for _, host := range hosts {
		if len(pending) == 0 || ctx.Err() != nil {
			break
		}
		choices := make([]policy.DeliveryChoice, len(pending))
		for j, i := range pending {
			choices[j] = policy.DeliveryChoice{Rcpt: m.st.Rcpts[i].Rcpt, Transport: policy.Forward, Target: host}
		}
		fails := s.agentDeliver(ctx, msg, m.st.From, choices)
		var again []int
		for j, i := range pending {
			switch fl := fails[j]; {
			case fl == nil:
				out[i] = result{remote: host}
			case fl.Temporary:
				out[i] = result{fail: toFailure(fl, host), remote: host}
				again = append(again, i)
			default:
				out[i] = result{fail: toFailure(fl, host), remote: host}
			}
		}
		pending = again
	}
	return out
}

// mailExchangers returns the hosts (host:port) to try for a domain, in
// order, or the failure that ends the recipients' delivery this round.
func (s *Spool) mailExchangers(ctx context.Context, domain string) ([]string, *failure) {
	if domain == "" {
		return nil, &failure{Status: "5.1.2", Error: "the recipient has no domain"}
	}
	if strings.HasPrefix(domain, "[") && strings.HasSuffix(domain, "]") {
		// An address literal: [192.0.2.1] or [IPv6:2001:db8::1].
		lit := domain[1 : len(domain)-1]
		if len(lit) > 5 && strings.EqualFold(lit[:5], "ipv6:") {
			lit = lit[5:]
		}
		ip, err := netip.ParseAddr(lit)
		if err != nil {
			return nil, &failure{Status: "5.1.2", Error: fmt.Sprintf("invalid address literal %s", domain)}
		}
		return []string{net.JoinHostPort(ip.String(), "25")}, nil
	}
	mxs, err := s.resolver.LookupMX(ctx, domain)
	var de *net.DNSError
	switch {
	case err == nil && len(mxs) > 0:
	case err == nil || errors.As(err, &de) && de.IsNotFound:
		// No MX: the domain is its own mail exchanger (RFC 5321 §5.1),
		// if it exists.
		if hr, ok := s.resolver.(hostResolver); ok {
			_, herr := hr.LookupHost(ctx, domain)
			var hde *net.DNSError
			if errors.As(herr, &hde) && hde.IsNotFound {
				return nil, &failure{Status: "5.1.2", Error: fmt.Sprintf("domain %s not found: no MX and no address", domain)}
			}
		}
		return []string{net.JoinHostPort(domain, "25")}, nil
	default:
		return nil, &failure{Temporary: true, Status: "4.4.3", Error: fmt.Sprintf("MX lookup for %s: %v", domain, err)}
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return nil, &failure{Status: "5.1.10", Error: fmt.Sprintf("domain %s accepts no mail (null MX)", domain)}
	}
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	hosts := make([]string, 0, len(mxs))
	for _, mx := range mxs {
		if h := mxTarget(mx.Host); h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return nil, &failure{Status: "5.1.10", Error: fmt.Sprintf("domain %s has no usable MX host", domain)}
	}
	return hosts, nil
}

// mxTarget turns an MX record's host (with an optional port) into
// host:port; "" when there is no host.
func mxTarget(h string) string {
	if host, port, err := net.SplitHostPort(h); err == nil {
		host = strings.TrimSuffix(host, ".")
		if host == "" {
			return ""
		}
		return net.JoinHostPort(host, port)
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return ""
	}
	return net.JoinHostPort(h, "25")
}

// toFailure records a delivery failure: the SMTP reply if there was one,
// an enhanced status code for the DSN, the error text, the remote host.
func toFailure(f *delivery.Failure, remote string) *failure {
	out := &failure{Temporary: f.Temporary, Error: oneLine(f.Error()), Remote: hostOf(remote)}
	class := 5
	if f.Temporary {
		class = 4
	}
	var se *smtp.SMTPError
	if errors.As(f.Err, &se) {
		out.Code, out.Reply = se.Code, oneLine(se.Message)
		if ec := se.EnhancedCode; ec[0] > 0 {
			out.Enhanced = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
		}
		if validStatus(out.Enhanced, class) {
			out.Status = out.Enhanced
		}
	}
	if out.Status == "" {
		switch {
		case out.Code != 0:
			out.Status = fmt.Sprintf("%d.0.0", class)
		case f.Transport == policy.Maildir || f.Transport == policy.Mbox:
			out.Status = fmt.Sprintf("%d.3.0", class) // mail system status
		case f.Temporary:
			out.Status = "4.4.1" // no answer from host
		default:
			out.Status = "5.4.0" // network or routing
		}
	}
	return out
}

// hostOf returns the host of a host:port, or s itself.
func hostOf(s string) string {
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// oneLine joins the lines of a text with spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\r", "")), " ")
}

// parseTransport reads a transport's name (policy.Transport.String).
func parseTransport(name string) (policy.Transport, bool) {
	for _, t := range []policy.Transport{policy.Deliver, policy.Maildir, policy.Mbox, policy.Forward} {
		if t.String() == name {
			return t, true
		}
	}
	return 0, false
}

// validStatus reports whether s is an enhanced status code x.y.z of class.
func validStatus(s string, class int) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(class) {
		return false
	}
	for _, p := range parts[1:] {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 999 {
			return false
		}
	}
	return true
}
