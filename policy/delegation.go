package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/vsl-milter/vsl-milter/policy/service"
	"github.com/vsl-milter/vsl-milter/vsl/syntax"
)

// DelegationHeader is the header prepended to a message handed to a
// third-party filter (SEMANTICS §7); the filter must send it back with the
// message.
const DelegationHeader = "X-VSMTP-DELEGATION"

// Delegation is a message handed, or about to be handed, to a third-party
// filter by a delegate directive. The front end sends the message to
// Service.Address, waits for it on Service.Receiver, and resumes the rules
// with Session.Resume once it is back (SEMANTICS §7).
type Delegation struct {
	Stage     Stage
	Directive string
	Pos       syntax.Position
	Service   *service.SMTP
	// ID identifies this delegation among all in flight: the transaction's
	// message id and the delegation's number in the transaction.
	ID       string
	index    int  // the directive's index in its stage
	returned bool // the message came back: the directive's body runs next
	skip     bool // the delegation failed under on_error = accept: the directive is skipped
}

// HeaderValue renders the X-VSMTP-DELEGATION value:
// sent; stage=<stage>; directive="<name>"; id="<id>".
func (d *Delegation) HeaderValue() string {
	return fmt.Sprintf("sent; stage=%s; directive=%q; id=%q", d.Stage, d.Directive, d.ID)
}

// ParseDelegationHeader reads the id and directive of an
// X-VSMTP-DELEGATION value; ok is false when it is not one vsl-milter wrote.
func ParseDelegationHeader(v string) (id, directive string, ok bool) {
	fields := map[string]string{}
	for _, part := range strings.Split(Unfold(v), ";") {
		k, val, found := strings.Cut(strings.TrimSpace(part), "=")
		if found {
			fields[k] = strings.Trim(val, `"`)
		}
	}
	id, directive = fields["id"], fields["directive"]
	return id, directive, id != "" && directive != "" && strings.HasPrefix(strings.TrimSpace(Unfold(v)), "sent")
}

// Delegation returns the delegation the rules asked for and that has not
// come back yet, or nil.
func (tx *Transaction) Delegation() *Delegation {
	if tx.delegation != nil && !tx.delegation.returned {
		return tx.delegation
	}
	return nil
}

// DelegatedMessage renders the message to send to the filter: the current
// header with X-VSMTP-DELEGATION prepended, and the body.
func (tx *Transaction) DelegatedMessage() []byte {
	d := tx.Delegation()
	if d == nil {
		return tx.MessageText()
	}
	hdrs := append([]Header{{Name: DelegationHeader, Value: d.HeaderValue()}}, tx.Headers...)
	saved := tx.Headers
	tx.Headers = hdrs
	b := tx.MessageText()
	tx.Headers = saved
	return b
}

// returnMessage takes the message the filter sent back: its header (without
// X-VSMTP-DELEGATION) and body replace the transaction's, and the
// differences are recorded as modifications, so a milter can apply what
// the filter changed. The envelope stays the original one.
func (tx *Transaction) returnMessage(headers []Header, body []byte) {
	var back []Header
	for _, h := range headers {
		if !strings.EqualFold(h.Name, DelegationHeader) {
			back = append(back, h)
		}
	}
	tx.diffHeaders(back)
	if string(body) != string(tx.Body) {
		tx.Body = body
		tx.record(Modification{Kind: ReplaceBody, Body: body})
	}
	tx.delegation.returned = true
}

// diffHeaders turns the current header into want, recording the fewest
// deletions and insertions (a longest common subsequence of the fields).
func (tx *Transaction) diffHeaders(want []Header) {
	cur := slices.Clone(tx.Headers) // tx.Headers changes as the edits are made
	n, m := len(cur), len(want)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if cur[i] == want[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	// Walk both lists; pos is the index in the header as modified so far.
	i, j, pos := 0, 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && cur[i] == want[j]:
			i, j, pos = i+1, j+1, pos+1
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			tx.insertHeader(pos, want[j].Name, want[j].Value)
			j, pos = j+1, pos+1
		default:
			// Delete cur[i], which sits at pos now: its occurrence index
			// among the fields of its name before it.
			occ := 1
			for _, h := range tx.Headers[:pos] {
				if strings.EqualFold(h.Name, cur[i].Name) {
					occ++
				}
			}
			tx.record(Modification{Kind: DeleteHeader, Name: cur[i].Name, Index: occ})
			tx.Headers = append(tx.Headers[:pos], tx.Headers[pos+1:]...)
			i++
		}
	}
}

// Resume continues after a delegation came back with the filter's message:
// the delegate directive's body runs against it, then the rest of its stage
// and the later stages after the message (up to delivery) as usual. It
// returns the first decision that is not ActionContinue, or the last one.
func (s *Session) Resume(ctx context.Context, headers []Header, body []byte) Decision {
	tx := s.Tx
	dl := tx.Delegation()
	if dl == nil {
		return s.decide(Verdict{Stage: tx.stage, Err: fmt.Errorf("no delegation is waiting for a message")})
	}
	tx.returnMessage(headers, body)
	d := s.decide(s.run(ctx, dl.Stage))
	if d.Action != ActionContinue || dl.Stage == Delivery {
		return d
	}
	return s.Delivery(ctx)
}

// FailDelegation ends a delegation that cannot complete (the filter is
// unreachable, refused the message, or did not send it back in time): the
// transaction gets the on_error decision, naming the directive.
func (s *Session) FailDelegation(ctx context.Context, err error) Decision {
	tx := s.Tx
	dl := tx.Delegation()
	if dl == nil {
		return s.decide(Verdict{Stage: tx.stage, Err: err})
	}
	re := &RuleError{Stage: dl.Stage, Kind: DelegateKind, Rule: dl.Directive, Pos: dl.Pos, Err: err}
	d := s.decide(Verdict{Stage: dl.Stage, Rule: dl.Directive, RuleStage: dl.Stage, Pos: dl.Pos, Err: re})
	if d.Action != ActionContinue {
		tx.delegation = nil
		return d
	}
	// on_error = accept: the directive counts as next(); the rest of its
	// stage and the later stages run on the message as it was.
	dl.returned, dl.skip = true, true
	d = s.decide(s.run(ctx, dl.Stage))
	if d.Action != ActionContinue || dl.Stage == Delivery {
		return d
	}
	return s.Delivery(ctx)
}

// PendingDelegation is what a front end keeps of a delegation waiting for
// its message, to resume the rules at its directive later, possibly in
// another process (the standalone spool's delegated queue): the
// delegation, and the envelope and delivery choices the rules had made
// when they reached it. The message itself is not in it: it comes back
// from the filter.
type PendingDelegation struct {
	Stage     Stage  `json:"stage"`
	Directive string `json:"directive"`
	Index     int    `json:"index"` // the directive's index in its stage
	ID        string `json:"id"`
	// Envelope is the transaction as the rules left it when they reached
	// the directive (Transaction.Save).
	Envelope   Saved            `json:"envelope"`
	Deliveries []DeliveryChoice `json:"deliveries,omitempty"`
	// Delegations counts the delegations of the transaction so far.
	Delegations int `json:"delegations"`
}

// SaveDelegation returns what must be kept of the pending delegation to
// RestoreDelegation it later; ok is false when no delegation waits.
func (s *Session) SaveDelegation() (p PendingDelegation, ok bool) {
	tx := s.Tx
	dl := tx.Delegation()
	if dl == nil {
		return PendingDelegation{}, false
	}
	p = PendingDelegation{
		Stage: dl.Stage, Directive: dl.Directive, Index: dl.index, ID: dl.ID,
		Envelope: tx.Save(), Delegations: tx.delegations,
	}
	for _, r := range tx.Rcpts {
		if d, found := tx.deliveries[r.key()]; found {
			d.Rcpt = r
			p.Deliveries = append(p.Deliveries, d)
		}
	}
	return p, true
}

// RestoreDelegation puts a saved pending delegation back on a session
// rebuilt with policy.Resume, so that Session.Resume runs the directive's
// body with the message that came back, then the rest of the rules. The
// envelope and delivery choices are the ones saved with it. It fails when
// the session's rules no longer have that delegate directive at that
// place (they were reloaded since).
func (s *Session) RestoreDelegation(p PendingDelegation) (*Delegation, error) {
	if p.Stage != PostQ && p.Stage != Delivery {
		return nil, fmt.Errorf("delegation %q: stage %s cannot delegate", p.ID, p.Stage)
	}
	ds := s.Rules.stages[p.Stage]
	if p.Index < 0 || p.Index >= len(ds) || ds[p.Index].Kind != DelegateKind || ds[p.Index].Name != p.Directive {
		return nil, fmt.Errorf("delegation %q: the rules have no delegate directive %q at this place in the %s stage any more", p.ID, p.Directive, p.Stage)
	}
	d := ds[p.Index]
	svc, _ := d.Service.AsHost().(*service.SMTP)
	tx := s.Tx
	e := p.Envelope
	tx.MailFrom, tx.MailAt = e.MailFrom, e.MailAt
	tx.Rcpts = append([]MailAddr(nil), e.Rcpts...)
	if len(tx.Rcpts) > 0 {
		tx.current = tx.Rcpts[len(tx.Rcpts)-1]
	}
	tx.deliveries = nil
	for _, dc := range p.Deliveries {
		tx.setDelivery(dc)
	}
	tx.delegations = max(tx.delegations, p.Delegations)
	tx.delegation = &Delegation{Stage: p.Stage, Directive: d.Name, Pos: d.Pos, Service: svc, ID: p.ID, index: p.Index}
	return tx.delegation, nil
}
