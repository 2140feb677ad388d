package policy

import (
	"context"
	"fmt"
	"strings"

	"github.com/vsl-milter/vsl-milter/policy/object"
	"github.com/vsl-milter/vsl-milter/vsl"
)

// runCtx is what the transaction API builtins see of the run in progress
// (the vsl.Thread's Host).
type runCtx struct {
	tx    *Transaction
	stage Stage
	opts  RunOptions
}

// apiFunc is one function of the transaction API (SEMANTICS §5).
type apiFunc struct {
	names []string // the v1 flat name first, then the v2 and alias names
	from  Stage    // the first stage where it is available
	// fn implements it; it returns vsl.ErrNoMatch for arguments of the
	// wrong number or kind.
	fn func(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error)
}

// stagesFrom lists the stages from s on, for error messages.
func stagesFrom(s Stage) string {
	var names []string
	for st := s; st < numStages; st++ {
		names = append(names, st.String())
	}
	return strings.Join(names, ", ")
}

// defineAPI registers the transaction API under its v1 and v2 names.
func defineAPI(env *vsl.Env) {
	for _, f := range apiTable {
		f := f
		fn := func(c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
			th := c.Thread()
			var rc *runCtx
			if th != nil {
				rc, _ = th.Host.(*runCtx)
			}
			if rc == nil {
				return vsl.Value{}, fmt.Errorf("only available inside a rule or an action, while a transaction runs")
			}
			if rc.stage < f.from {
				return vsl.Value{}, fmt.Errorf("not available at the %s stage: it can be used from %s on (%s)", rc.stage, f.from, stagesFrom(f.from))
			}
			if rc.tx.beforeMessage && readsMessage[c.Name()] {
				return vsl.Value{}, fmt.Errorf("internal error: the delivery stage runs before the message arrives, but reads it; please report this rule set")
			}
			return f.fn(rc, c, args)
		}
		for _, n := range f.names {
			env.Define(&vsl.Builtin{Name: n, Fn: fn})
		}
	}
	defineLog(env)
}

// getterStage returns the first stage where the API function named name is
// available, for the check command's warnings.
func getterStage(name string) (Stage, bool) {
	for _, f := range apiTable {
		for _, n := range f.names {
			if n == name {
				return f.from, f.from > Connect
			}
		}
	}
	return 0, false
}

func noArgs(args []vsl.Value) bool { return len(args) == 0 }

// apiTable is the transaction API: built once, read-only afterwards.
var apiTable = apiFuncs()

// apiFuncs builds the table of the transaction API.
func apiFuncs() []apiFunc {
	return []apiFunc{
		// Connection.
		{[]string{"client_ip", "ctx::client_ip"}, Connect, get0(func(tx *Transaction) vsl.Value { return object.IPValue(tx.ClientAddr.Addr().Unmap()) })},
		{[]string{"client_port", "ctx::client_port"}, Connect, get0(func(tx *Transaction) vsl.Value { return vsl.Int(int64(tx.ClientAddr.Port())) })},
		{[]string{"client_address", "ctx::client_address"}, Connect, get0(func(tx *Transaction) vsl.Value { return vsl.String(tx.ClientAddr.String()) })},
		{[]string{"server_ip", "ctx::server_ip"}, Connect, get0(func(tx *Transaction) vsl.Value { return object.IPValue(tx.ServerAddr.Addr().Unmap()) })},
		{[]string{"server_port", "ctx::server_port"}, Connect, get0(func(tx *Transaction) vsl.Value { return vsl.Int(int64(tx.ServerAddr.Port())) })},
		{[]string{"server_address", "ctx::server_address"}, Connect, get0(func(tx *Transaction) vsl.Value { return vsl.String(tx.ServerAddr.String()) })},
		{[]string{"server_name", "ctx::server_name"}, Connect, get0(func(tx *Transaction) vsl.Value { return object.FQDNValue(tx.ServerName) })},
		{[]string{"is_secured", "ctx::is_secured"}, Connect, get0(func(tx *Transaction) vsl.Value { return vsl.Bool(tx.Secured) })},
		{[]string{"connection_timestamp", "ctx::connection_timestamp"}, Connect, get0(func(tx *Transaction) vsl.Value {
			return vsl.String(tx.ConnectedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		})},
		{[]string{"ctx", "ctx::ctx"}, Connect, func(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
			if !noArgs(args) {
				return vsl.Value{}, vsl.ErrNoMatch
			}
			return vsl.Host(&ctxView{rc: rc}), nil
		}},
		// HELO and authentication.
		{[]string{"helo", "ctx::helo"}, Helo, get0(func(tx *Transaction) vsl.Value { return vsl.String(tx.Helo) })},
		{[]string{"is_authenticated", "auth::is_authenticated"}, Connect, get0(func(tx *Transaction) vsl.Value { return vsl.Bool(tx.Auth != nil) })},
		{[]string{"auth", "auth::credentials"}, Authenticate, func(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
			if !noArgs(args) {
				return vsl.Value{}, vsl.ErrNoMatch
			}
			a := rc.tx.Auth
			if a == nil {
				return vsl.Value{}, fmt.Errorf("the client has not authenticated: test is_authenticated() first")
			}
			return vsl.NewMap(map[string]vsl.Value{
				"type": vsl.String(a.Type), "authid": vsl.String(a.AuthID), "authpass": vsl.String(a.AuthPass),
			}), nil
		}},
		// The envelope.
		{[]string{"mail_from", "ctx::mail_from"}, Mail, get0(func(tx *Transaction) vsl.Value { return tx.mailFromValue() })},
		{[]string{"mail_timestamp", "ctx::mail_timestamp"}, Mail, get0(func(tx *Transaction) vsl.Value {
			return vsl.String(tx.MailAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		})},
		{[]string{"message_id", "ctx::message_id"}, Mail, get0(func(tx *Transaction) vsl.Value { return vsl.String(tx.MessageID) })},
		{[]string{"rcpt", "ctx::rcpt"}, Rcpt, get0(func(tx *Transaction) vsl.Value { return tx.rcptValue() })},
		{[]string{"rcpt_list", "ctx::rcpt_list"}, Rcpt, get0(func(tx *Transaction) vsl.Value { return tx.rcptListValue() })},
		{[]string{"add_rcpt_envelop", "add_rcpt", "envelop::add_rcpt"}, Mail, addrFn(func(rc *runCtx, a MailAddr) { rc.tx.addRcpt(a) })},
		{[]string{"bcc", "envelop::bcc"}, Mail, addrFn(func(rc *runCtx, a MailAddr) { rc.tx.addRcpt(a) })},
		{[]string{"remove_rcpt_envelop", "remove_rcpt", "envelop::rm_rcpt"}, Mail, addrFn(func(rc *runCtx, a MailAddr) { rc.tx.removeRcpt(a) })},
		{[]string{"rewrite_rcpt_envelop", "rewrite_rcpt", "envelop::rw_rcpt"}, Mail, addr2Fn(func(rc *runCtx, old, new MailAddr) {
			if rc.tx.removeRcpt(old) {
				rc.tx.addRcpt(new)
			}
		})},
		{[]string{"rewrite_mail_from_envelop", "envelop::rw_mail_from"}, Mail, addrFn(func(rc *runCtx, a MailAddr) { rc.tx.setMailFrom(a) })},
		// The message.
		{[]string{"mail", "msg::mail"}, PreQ, get0(func(tx *Transaction) vsl.Value { return vsl.String(string(tx.MessageText())) })},
		{[]string{"has_header", "msg::has_header"}, PreQ, str1(func(rc *runCtx, name string) vsl.Value { return vsl.Bool(rc.tx.firstHeader(name) >= 0) })},
		{[]string{"count_header", "msg::count_header"}, PreQ, str1(func(rc *runCtx, name string) vsl.Value { return vsl.Int(int64(rc.tx.countHeader(name))) })},
		{[]string{"get_header", "msg::get_header"}, PreQ, str1(func(rc *runCtx, name string) vsl.Value {
			v, _ := rc.tx.HeaderValue(name)
			return vsl.String(v)
		})},
		{[]string{"get_all_headers", "msg::get_all_headers"}, PreQ, getAllHeaders},
		{[]string{"append_header", "add_header", "msg::append_header", "msg::add_header"}, Connect, str2(func(rc *runCtx, name, value string) error {
			return rc.header(headerOp{kind: opAppend, name: name, value: value})
		})},
		{[]string{"prepend_header", "msg::prepend_header"}, Connect, str2(func(rc *runCtx, name, value string) error {
			return rc.header(headerOp{kind: opPrepend, name: name, value: value})
		})},
		{[]string{"set_header", "msg::set_header"}, Connect, str2(func(rc *runCtx, name, value string) error {
			return rc.header(headerOp{kind: opSet, name: name, value: value})
		})},
		{[]string{"rename_header", "msg::rename_header"}, Connect, str2(func(rc *runCtx, old, new string) error {
			if err := checkHeaderName(new); err != nil {
				return err
			}
			rc.tx.headerOp(headerOp{kind: opRename, name: old, value: new})
			return nil
		})},
		{[]string{"remove_header", "msg::remove_header", "msg::rm_header"}, Connect, str1(func(rc *runCtx, name string) vsl.Value {
			rc.tx.headerOp(headerOp{kind: opRemove, name: name})
			return vsl.Value{}
		})},
		{[]string{"rewrite_mail_from_message", "msg::rw_mail_from"}, PreQ, addrFn(func(rc *runCtx, a MailAddr) { rc.rewriteFromHeader(a) })},
		{[]string{"add_rcpt_message", "msg::add_rcpt"}, PreQ, addrFn(func(rc *runCtx, a MailAddr) { rc.editToHeader(MailAddr{}, a) })},
		{[]string{"remove_rcpt_message", "msg::rm_rcpt"}, PreQ, addrFn(func(rc *runCtx, a MailAddr) { rc.editToHeader(a, MailAddr{}) })},
		{[]string{"rewrite_rcpt_message", "msg::rw_rcpt"}, PreQ, addr2Fn(func(rc *runCtx, old, new MailAddr) { rc.editToHeader(old, new) })},
		// Delivery, per recipient.
		{[]string{"deliver", "transport::deliver"}, Rcpt, transportFn(Deliver)},
		{[]string{"maildir", "transport::maildir"}, Rcpt, transportFn(Maildir)},
		{[]string{"mbox", "transport::mbox"}, Rcpt, transportFn(Mbox)},
		{[]string{"forward", "transport::forward"}, Rcpt, forwardFn},
		{[]string{"deliver_all", "transport::deliver_all"}, Rcpt, transportAllFn(Deliver)},
		{[]string{"maildir_all", "transport::maildir_all"}, Rcpt, transportAllFn(Maildir)},
		{[]string{"mbox_all", "transport::mbox_all"}, Rcpt, transportAllFn(Mbox)},
		{[]string{"forward_all", "transport::forward_all"}, Rcpt, forwardAllFn},
		// Utilities.
		{[]string{"in_domain", "utils::in_domain"}, Connect, inDomain},
		{[]string{"lookup", "dns::lookup"}, Connect, lookup},
		{[]string{"rlookup", "dns::rlookup"}, Connect, rlookup},
		{[]string{"date", "time::date"}, Connect, dateFn("2006-01-02")},
		{[]string{"time", "time::time"}, Connect, dateFn("15:04:05")},
		{[]string{"hostname", "sys::hostname"}, Connect, hostnameFn},
		{[]string{"env", "sys::env"}, Connect, envFn},
		{[]string{"user_exist", "sys::user_exist"}, Connect, userExist},
		{[]string{"write", "fs::write"}, PreQ, writeFn(false)},
		{[]string{"dump", "fs::dump"}, Mail, writeFn(true)},
	}
}

// get0 adapts a getter of no arguments.
func get0(f func(tx *Transaction) vsl.Value) func(*runCtx, *vsl.Call, []vsl.Value) (vsl.Value, error) {
	return func(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 0 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		return f(rc.tx), nil
	}
}

// text returns the text of a string or of an object (fqdn, ident, ...).
func text(v vsl.Value) (string, bool) {
	switch v.Kind() {
	case vsl.KindString:
		return v.AsString(), true
	case vsl.KindChar:
		return string(v.AsChar()), true
	case vsl.KindHost:
		if _, ok := v.AsHost().(*Status); ok {
			return "", false
		}
		return v.AsHost().String(), true
	}
	return "", false
}

// str1 adapts a function of one string.
func str1(f func(rc *runCtx, s string) vsl.Value) func(*runCtx, *vsl.Call, []vsl.Value) (vsl.Value, error) {
	return func(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 1 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		s, ok := text(args[0])
		if !ok {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		return f(rc, s), nil
	}
}

// str2 adapts a function of two strings returning nothing.
func str2(f func(rc *runCtx, a, b string) error) func(*runCtx, *vsl.Call, []vsl.Value) (vsl.Value, error) {
	return func(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 2 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		a, ok1 := text(args[0])
		b, ok2 := text(args[1])
		if !ok1 || !ok2 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		return vsl.Value{}, f(rc, a, b)
	}
}

// toMailAddr converts an address object or a string to an envelope address.
func toMailAddr(v vsl.Value) (MailAddr, error) {
	if a, ok := v.AsHost().(*object.Address); ok {
		return MailAddr{Local: a.Local, Domain: a.Domain}, nil
	}
	s, ok := text(v)
	if !ok {
		return MailAddr{}, fmt.Errorf("expected an address or a string, got %s", v.TypeName())
	}
	a, err := object.ParseAddress(s)
	if err != nil {
		return MailAddr{}, err
	}
	return MailAddr{Local: a.Local, Domain: a.Domain}, nil
}

// addrFn adapts a function of one address.
func addrFn(f func(rc *runCtx, a MailAddr)) func(*runCtx, *vsl.Call, []vsl.Value) (vsl.Value, error) {
	return func(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 1 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		a, err := toMailAddr(args[0])
		if err != nil {
			return vsl.Value{}, err
		}
		f(rc, a)
		return vsl.Value{}, nil
	}
}

// addr2Fn adapts a function of two addresses.
func addr2Fn(f func(rc *runCtx, a, b MailAddr)) func(*runCtx, *vsl.Call, []vsl.Value) (vsl.Value, error) {
	return func(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 2 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		a, err := toMailAddr(args[0])
		if err != nil {
			return vsl.Value{}, err
		}
		b, err := toMailAddr(args[1])
		if err != nil {
			return vsl.Value{}, err
		}
		f(rc, a, b)
		return vsl.Value{}, nil
	}
}

// ---- Values of the envelope, cached per transaction ----

func (tx *Transaction) mailFromValue() vsl.Value {
	if tx.MailFrom.Null {
		return object.IdentValue("null")
	}
	return tx.addrValue(tx.MailFrom)
}

// addrValue returns the address object of a, made once per transaction.
func (tx *Transaction) addrValue(a MailAddr) vsl.Value {
	for _, e := range tx.cache.addrs {
		if e.a == a {
			return e.v
		}
	}
	v := object.AddressValue(a.Local, a.Domain)
	if tx.cache.addrs == nil {
		tx.cache.addrs = tx.cache.buf[:0]
	}
	tx.cache.addrs = append(tx.cache.addrs, addrVal{a, v})
	return v
}

func (tx *Transaction) rcptValue() vsl.Value {
	r := tx.current
	if tx.stage > Rcpt && len(tx.Rcpts) > 0 {
		r = tx.Rcpts[len(tx.Rcpts)-1]
	}
	return tx.addrValue(r)
}

func (tx *Transaction) rcptListValue() vsl.Value {
	elems := make([]vsl.Value, len(tx.Rcpts))
	for i, r := range tx.Rcpts {
		elems[i] = tx.addrValue(r)
	}
	return vsl.NewArray(elems)
}

// ctxView is the value of ctx(): the transaction's fields as properties
// (ctx().client_ip, ctx().rcpt_list), read when they are accessed. Fields
// not yet known at the running stage are ().
type ctxView struct{ rc *runCtx }

// TypeName implements vsl.HostValue.
func (v *ctxView) TypeName() string { return "context" }

// String implements vsl.HostValue.
func (v *ctxView) String() string {
	return fmt.Sprintf("context(%s, stage %s)", v.rc.tx.ClientAddr, v.rc.stage)
}

// ctxFields are the properties of ctx() and the stage they need.
var ctxFields = map[string]Stage{
	"client_ip": Connect, "client_port": Connect, "client_address": Connect, "server_ip": Connect,
	"server_port": Connect, "server_address": Connect, "server_name": Connect, "is_secured": Connect,
	"connection_timestamp": Connect, "is_authenticated": Connect, "helo": Helo, "mail_from": Mail,
	"mail_timestamp": Mail, "message_id": Mail, "rcpt": Rcpt, "rcpt_list": Rcpt,
}

// Attr implements vsl.HostAttrs through the getters of the same name.
func (v *ctxView) Attr(name string) (vsl.Value, bool, error) {
	if name == "stage" {
		return vsl.String(v.rc.stage.String()), true, nil
	}
	from, ok := ctxFields[name]
	if !ok {
		return vsl.Value{}, false, nil
	}
	if v.rc.stage < from {
		return vsl.Value{}, true, nil
	}
	for _, f := range apiTable {
		if f.names[0] == name {
			r, err := f.fn(v.rc, nil, nil)
			return r, true, err
		}
	}
	return vsl.Value{}, false, nil
}

// ---- Headers ----

// checkHeaderName refuses names that would corrupt the header block.
func checkHeaderName(name string) error {
	if name == "" {
		return fmt.Errorf("a header name cannot be empty")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 127 || c == ':' {
			return fmt.Errorf("invalid header name %q: only printable ASCII without ':' or spaces", name)
		}
	}
	return nil
}

// checkHeaderValue refuses values that would inject header lines.
func checkHeaderValue(name, value string) error {
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c == '\r' || c == '\n') && !(i+1 < len(value) && (value[i+1] == ' ' || value[i+1] == '\t' || value[i+1] == '\n')) {
			return fmt.Errorf("invalid value for header %s: a line break must be followed by a space or tab (folding)", name)
		}
	}
	return nil
}

// header applies or defers a header change after checking it.
func (rc *runCtx) header(op headerOp) error {
	if err := checkHeaderName(op.name); err != nil {
		return err
	}
	if err := checkHeaderValue(op.name, op.value); err != nil {
		return err
	}
	rc.tx.headerOp(op)
	return nil
}

func getAllHeaders(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	var out []vsl.Value
	switch len(args) {
	case 0:
		for _, h := range rc.tx.Headers {
			out = append(out, vsl.String(h.Name+": "+Unfold(h.Value)))
		}
	case 1:
		name, ok := text(args[0])
		if !ok {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		for _, h := range rc.tx.Headers {
			if strings.EqualFold(h.Name, name) {
				out = append(out, vsl.String(Unfold(h.Value)))
			}
		}
	default:
		return vsl.Value{}, vsl.ErrNoMatch
	}
	if out == nil {
		out = []vsl.Value{}
	}
	return vsl.NewArray(out), nil
}

// ---- Delivery ----

func transportFn(t Transport) func(*runCtx, *vsl.Call, []vsl.Value) (vsl.Value, error) {
	return func(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 1 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		a, err := toMailAddr(args[0])
		if err != nil {
			return vsl.Value{}, err
		}
		return vsl.Value{}, rc.setDelivery(DeliveryChoice{Rcpt: a, Transport: t})
	}
}

func transportAllFn(t Transport) func(*runCtx, *vsl.Call, []vsl.Value) (vsl.Value, error) {
	return func(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 0 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		for _, r := range rc.tx.Rcpts {
			rc.tx.setDelivery(DeliveryChoice{Rcpt: r, Transport: t})
		}
		return vsl.Value{}, nil
	}
}

func forwardFn(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	if len(args) != 2 {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	a, err := toMailAddr(args[0])
	if err != nil {
		return vsl.Value{}, err
	}
	target, ok := text(args[1])
	if !ok || target == "" {
		return vsl.Value{}, fmt.Errorf("forward needs a target host[:port], got %s", vsl.Debug(args[1]))
	}
	return vsl.Value{}, rc.setDelivery(DeliveryChoice{Rcpt: a, Transport: Forward, Target: target})
}

func forwardAllFn(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	if len(args) != 1 {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	target, ok := text(args[0])
	if !ok || target == "" {
		return vsl.Value{}, fmt.Errorf("forward_all needs a target host[:port], got %s", vsl.Debug(args[0]))
	}
	for _, r := range rc.tx.Rcpts {
		rc.tx.setDelivery(DeliveryChoice{Rcpt: r, Transport: Forward, Target: target})
	}
	return vsl.Value{}, nil
}

// setDelivery records a delivery choice for a recipient of the envelope.
func (rc *runCtx) setDelivery(d DeliveryChoice) error {
	i := rc.tx.hasRcpt(d.Rcpt)
	if i < 0 {
		return fmt.Errorf("%s is not a recipient of this message (the recipients are %s)", d.Rcpt, rc.tx.rcptNames())
	}
	d.Rcpt = rc.tx.Rcpts[i]
	rc.tx.setDelivery(d)
	return nil
}

func (tx *Transaction) rcptNames() string {
	if len(tx.Rcpts) == 0 {
		return "none yet"
	}
	names := make([]string, len(tx.Rcpts))
	for i, r := range tx.Rcpts {
		names[i] = r.String()
	}
	return strings.Join(names, ", ")
}

// ---- Logging ----

// defineLog registers log(level, text), keeping Rhai's math log(x) and
// log(x, base) under the same name.
func defineLog(env *vsl.Env) {
	math := env.Lookup("log")
	fn := func(c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) == 2 && args[0].Kind() == vsl.KindString {
			level := strings.ToLower(args[0].AsString())
			switch level {
			case "trace", "debug", "info", "warn", "warning", "error":
			default:
				return vsl.Value{}, fmt.Errorf("unknown log level %q: use trace, debug, info, warn or error", args[0].AsString())
			}
			if th := c.Thread(); th != nil {
				if rc, ok := th.Host.(*runCtx); ok && rc.opts.Log != nil {
					rc.opts.Log(level, vsl.ToString(args[1]))
				} else if th.Out != nil {
					fmt.Fprintf(th.Out, "[%s] %s\n", level, vsl.ToString(args[1]))
				}
			}
			return vsl.Value{}, nil
		}
		if math != nil {
			return math.Fn(c, args)
		}
		return vsl.Value{}, vsl.ErrNoMatch
	}
	env.Define(&vsl.Builtin{Name: "log", Fn: fn})
	env.Define(&vsl.Builtin{Name: "sys::log", Fn: fn})
}

// lookupContext returns the context of the running script.
func lookupContext(c *vsl.Call) context.Context {
	if th := c.Thread(); th != nil && th.Context() != nil {
		return th.Context()
	}
	return context.Background()
}
