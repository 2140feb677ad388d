package policy

import (
	"net/netip"
	"strings"
	"time"

	"github.com/vsl-milter/vsl-milter/policy/object"
	"github.com/vsl-milter/vsl-milter/vsl"
)

// Transaction is one SMTP connection and its current mail transaction as a
// front end (milter or SMTP server) sees them, and what the rules recorded
// about them. The front end fills it through a Session, which runs the
// stage whose data has just arrived; the rules read it through the
// transaction API and record modifications and delivery choices, which the
// front end applies at the end of the message.
//
// A Transaction is used by one goroutine at a time.
type Transaction struct {
	// Connection: known from the connect stage on.
	ClientAddr  netip.AddrPort
	ServerAddr  netip.AddrPort
	ServerName  string // the name the server presents (its domain)
	Secured     bool   // TLS is active
	ConnectedAt time.Time

	// Helo is the HELO/EHLO argument, from the helo stage on.
	Helo string

	// Auth is set when the client authenticated (authenticate stage on).
	Auth *Auth

	// MailFrom is the envelope sender from the mail stage on, after the
	// rules' rewrites; its Null field marks the null sender <>.
	MailFrom MailAddr
	MailAt   time.Time

	// Rcpts is the current envelope: the recipients accepted so far
	// (during rcpt: including the one being checked, which is last), after
	// the rules' additions, removals and rewrites.
	Rcpts []MailAddr

	// Headers and Body are the message, from the preq stage on. Headers
	// reflect the rules' changes as they happen.
	Headers []Header
	Body    []byte

	// MessageID identifies the transaction (the MTA's queue id or one the
	// session generated).
	MessageID string

	stage     Stage
	reached   Stage // the furthest stage run, for getters' availability
	inMessage bool  // the message (headers and body) has arrived
	// beforeMessage: the delivery stage runs before the message arrives
	// (Session.DeliveryBeforeMessage); the message's functions fail.
	beforeMessage bool
	mods          []Modification
	deferred      []headerOp // header changes made before the message arrived
	connHdrs      []headerOp // the part of deferred made at connect/helo: kept for every transaction
	deliveries    map[string]DeliveryChoice
	refused       []Refusal
	current       MailAddr // the recipient being checked at rcpt (rcpt() later: the last one)
	finished      *Verdict // the finished status that ends rule processing
	sessionFin    *Verdict // a finished status at connect/helo: it holds for every transaction
	cache         valueCache
	rc            runCtx      // what the API builtins see of the stage running on it
	delegation    *Delegation // the delegation in progress
	delegations   int         // delegations so far in this transaction
}

// valueCache keeps the script values of envelope fields, so that rules
// reading mail_from() or rcpt() many times do not allocate each time.
type valueCache struct {
	addrs []addrVal
	buf   [6]addrVal
}

// addrVal is an envelope address and its script value.
type addrVal struct {
	a MailAddr
	v vsl.Value
}

// Auth is what the client authenticated with.
type Auth struct {
	Type     string // the SASL mechanism, e.g. PLAIN
	AuthID   string
	AuthPass string
}

// MailAddr is an envelope address.
type MailAddr struct {
	Local  string
	Domain string
	Null   bool // the null sender <>
}

// ParseMailAddr splits an envelope address ("<a@b>", "a@b", "<>"), as
// MTAs hand them over; it does not validate the syntax.
func ParseMailAddr(s string) MailAddr {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "<")
	s = strings.TrimSuffix(s, ">")
	if s == "" {
		return MailAddr{Null: true}
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return MailAddr{Local: s}
	}
	return MailAddr{Local: s[:at], Domain: s[at+1:]}
}

// String renders the address without angle brackets ("" for the null sender).
func (a MailAddr) String() string {
	switch {
	case a.Null:
		return ""
	case a.Domain == "":
		return a.Local
	}
	return a.Local + "@" + a.Domain
}

// Same reports whether two addresses are the same mailbox: local parts
// compared exactly, domains case-insensitively.
func (a MailAddr) Same(b MailAddr) bool {
	return a.Null == b.Null && a.Local == b.Local && strings.EqualFold(a.Domain, b.Domain)
}

// key is the address's identity for maps: the domain lower-cased.
func (a MailAddr) key() string {
	if a.Null {
		return "<>"
	}
	return a.Local + "@" + strings.ToLower(a.Domain)
}

// Header is one header field; Value is the field's text after the colon,
// without the one leading space (folding kept as received).
type Header struct {
	Name  string
	Value string
}

// ModKind is the kind of a recorded modification.
type ModKind uint8

// The modifications rules record, replayed in order at the end of the
// message (SEMANTICS §8).
const (
	AddHeader    ModKind = iota // append Name: Value at the end of the header
	InsertHeader                // insert Name: Value before the Index-th header (0: first)
	ChangeHeader                // change the Index-th (1-based) occurrence of Name to Value
	DeleteHeader                // delete the Index-th (1-based) occurrence of Name
	AddRcpt                     // add the recipient Addr
	DeleteRcpt                  // delete the recipient Addr
	ChangeFrom                  // change the envelope sender to Addr
	ReplaceBody                 // replace the body with Body
)

var modNames = [...]string{"add_header", "insert_header", "change_header", "delete_header", "add_rcpt", "delete_rcpt", "change_from", "replace_body"}

// String returns the modification kind's name.
func (k ModKind) String() string { return modNames[k] }

// Modification is one change the rules made to the message or envelope.
// Header indexes refer to the header as it is when the modification is
// applied, after every earlier modification.
type Modification struct {
	Kind  ModKind
	Name  string
	Value string
	Index int
	Addr  MailAddr
	Body  []byte
}

// Transport is how a recipient's copy is delivered.
type Transport uint8

// The transports of SEMANTICS §5.
const (
	Deliver Transport = iota // left to the MTA (milter) or MX delivery (standalone)
	Maildir
	Mbox
	Forward
)

var transportNames = [...]string{"deliver", "maildir", "mbox", "forward"}

// String returns the transport's name.
func (t Transport) String() string { return transportNames[t] }

// DeliveryChoice is the delivery choice for one recipient.
type DeliveryChoice struct {
	Rcpt      MailAddr
	Transport Transport
	Target    string // forward: host[:port] or smtp://host:port
}

// Refusal is a recipient the rules refused at the rcpt stage.
type Refusal struct {
	Rcpt  MailAddr
	Reply object.Code
	Rule  string
}

// NewTransaction returns a transaction for a new connection.
func NewTransaction() *Transaction {
	return &Transaction{ConnectedAt: time.Now()}
}

// Reset ends the current mail transaction (after the end of a message, RSET
// or a refused MAIL) and keeps the connection's data: client, server, helo
// and auth, headers added at connect or helo, and a finished status reached
// at connect or helo.
func (tx *Transaction) Reset() {
	*tx = Transaction{
		ClientAddr: tx.ClientAddr, ServerAddr: tx.ServerAddr, ServerName: tx.ServerName,
		Secured: tx.Secured, ConnectedAt: tx.ConnectedAt, Helo: tx.Helo, Auth: tx.Auth,
		sessionFin: tx.sessionFin, finished: tx.sessionFin, connHdrs: tx.connHdrs,
		reached: min(tx.reached, Authenticate), stage: min(tx.stage, Authenticate),
		mods: tx.mods[:0], Rcpts: tx.Rcpts[:0], Headers: tx.Headers[:0], refused: tx.refused[:0],
		deferred: append(tx.deferred[:0], tx.connHdrs...),
	}
}

// Modifications returns the changes the rules recorded, in order.
func (tx *Transaction) Modifications() []Modification { return tx.mods }

// Refused returns the recipients the rules refused, in order.
func (tx *Transaction) Refused() []Refusal { return tx.refused }

// Finished returns the finished status (faccept, deny, quarantine) that
// ended rule processing, or nil.
func (tx *Transaction) Finished() *Verdict { return tx.finished }

// Deliveries returns the delivery choice for every recipient of the
// current envelope (Deliver unless a rule chose otherwise), in envelope order.
func (tx *Transaction) Deliveries() []DeliveryChoice {
	out := make([]DeliveryChoice, 0, len(tx.Rcpts))
	for _, r := range tx.Rcpts {
		if d, ok := tx.deliveries[r.key()]; ok {
			d.Rcpt = r
			out = append(out, d)
		} else {
			out = append(out, DeliveryChoice{Rcpt: r, Transport: Deliver})
		}
	}
	return out
}

// Stage returns the stage the transaction is in.
func (tx *Transaction) Stage() Stage { return tx.stage }

func (tx *Transaction) record(m Modification) { tx.mods = append(tx.mods, m) }

func (tx *Transaction) setDelivery(d DeliveryChoice) {
	if tx.deliveries == nil {
		tx.deliveries = map[string]DeliveryChoice{}
	}
	tx.deliveries[d.Rcpt.key()] = d
}

// hasRcpt returns the index of a in the envelope, or -1.
func (tx *Transaction) hasRcpt(a MailAddr) int {
	for i, r := range tx.Rcpts {
		if r.Same(a) {
			return i
		}
	}
	return -1
}

// addRcpt adds a recipient to the envelope (no duplicate) and records it.
func (tx *Transaction) addRcpt(a MailAddr) {
	if tx.hasRcpt(a) >= 0 {
		return
	}
	tx.Rcpts = append(tx.Rcpts, a)
	tx.record(Modification{Kind: AddRcpt, Addr: a})
}

// removeRcpt removes a recipient from the envelope and records it; it
// reports whether the recipient was there.
func (tx *Transaction) removeRcpt(a MailAddr) bool {
	i := tx.hasRcpt(a)
	if i < 0 {
		return false
	}
	tx.Rcpts = append(tx.Rcpts[:i], tx.Rcpts[i+1:]...)
	tx.record(Modification{Kind: DeleteRcpt, Addr: a})
	if d, ok := tx.deliveries[a.key()]; ok && d.Rcpt.Same(a) {
		delete(tx.deliveries, a.key())
	}
	return true
}

// setMailFrom changes the envelope sender and records it.
func (tx *Transaction) setMailFrom(a MailAddr) {
	tx.MailFrom = a
	tx.record(Modification{Kind: ChangeFrom, Addr: a})
}

// Snapshot is a JSON-friendly copy of a transaction (dump() writes it).
type Snapshot struct {
	ClientAddr  string      `json:"client_address"`
	ServerAddr  string      `json:"server_address"`
	ServerName  string      `json:"server_name"`
	Secured     bool        `json:"is_secured"`
	ConnectedAt time.Time   `json:"connection_timestamp"`
	Helo        string      `json:"helo"`
	AuthID      string      `json:"authid,omitempty"`
	MailFrom    string      `json:"mail_from"`
	Rcpts       []string    `json:"rcpt_list"`
	MessageID   string      `json:"message_id"`
	Headers     [][2]string `json:"headers"`
}

// Snapshot returns a copy of the transaction's data for encoding.
func (tx *Transaction) Snapshot() Snapshot {
	s := Snapshot{
		ClientAddr: tx.ClientAddr.String(), ServerAddr: tx.ServerAddr.String(), ServerName: tx.ServerName,
		Secured: tx.Secured, ConnectedAt: tx.ConnectedAt, Helo: tx.Helo, MailFrom: tx.MailFrom.String(),
		MessageID: tx.MessageID, Rcpts: []string{}, Headers: [][2]string{},
	}
	if tx.Auth != nil {
		s.AuthID = tx.Auth.AuthID
	}
	for _, r := range tx.Rcpts {
		s.Rcpts = append(s.Rcpts, r.String())
	}
	for _, h := range tx.Headers {
		s.Headers = append(s.Headers, [2]string{h.Name, Unfold(h.Value)})
	}
	return s
}
