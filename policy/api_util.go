package policy

import (
	"encoding/json"
	"fmt"
	"net"
	"net/mail"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/vsl-milter/vsl-milter/internal/durable"
	"github.com/vsl-milter/vsl-milter/policy/object"
	"github.com/vsl-milter/vsl-milter/vsl"
)

// inDomain reports whether an address, a domain or a string names one of
// the server's own domains (its name and RunOptions.Domains).
func inDomain(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	if len(args) != 1 {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	var domain string
	if a, ok := args[0].AsHost().(*object.Address); ok {
		domain = a.Domain
	} else if s, ok := text(args[0]); ok {
		domain = s
		if at := strings.LastIndexByte(s, '@'); at >= 0 {
			domain = s[at+1:]
		}
	} else {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	domain = strings.TrimSuffix(domain, ".")
	if strings.EqualFold(domain, strings.TrimSuffix(rc.tx.ServerName, ".")) {
		return vsl.Bool(true), nil
	}
	for _, d := range rc.opts.Domains {
		if strings.EqualFold(domain, strings.TrimSuffix(d, ".")) {
			return vsl.Bool(true), nil
		}
	}
	return vsl.Bool(false), nil
}

// lookup resolves a host name to its addresses (ip objects).
func lookup(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	if len(args) != 1 {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	host, ok := text(args[0])
	if !ok {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	addrs, err := net.DefaultResolver.LookupNetIP(lookupContext(c), "ip", host)
	if err != nil {
		return vsl.Value{}, fmt.Errorf("looking up %s: %w", host, err)
	}
	out := make([]vsl.Value, len(addrs))
	for i, a := range addrs {
		out[i] = object.IPValue(a.Unmap())
	}
	return vsl.NewArray(out), nil
}

// rlookup resolves an address to its host names (fqdn objects).
func rlookup(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	if len(args) != 1 {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	ip, ok := text(args[0])
	if !ok {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	names, err := net.DefaultResolver.LookupAddr(lookupContext(c), ip)
	if err != nil {
		return vsl.Value{}, fmt.Errorf("reverse lookup of %s: %w", ip, err)
	}
	out := make([]vsl.Value, len(names))
	for i, n := range names {
		out[i] = object.FQDNValue(strings.TrimSuffix(n, "."))
	}
	return vsl.NewArray(out), nil
}

func dateFn(layout string) func(*runCtx, *vsl.Call, []vsl.Value) (vsl.Value, error) {
	return func(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 0 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		return vsl.String(time.Now().Format(layout)), nil
	}
}

func hostnameFn(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	if len(args) != 0 {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	h, err := os.Hostname()
	if err != nil {
		return vsl.Value{}, fmt.Errorf("reading the host name: %w", err)
	}
	return vsl.String(h), nil
}

// envFn reads an environment variable ("" when unset).
func envFn(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	if len(args) != 1 {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	name, ok := text(args[0])
	if !ok {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	return vsl.String(os.Getenv(name)), nil
}

// userExist reports whether a local system user of that name (or of that
// address's local part) exists.
func userExist(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	if len(args) != 1 {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	var name string
	if a, ok := args[0].AsHost().(*object.Address); ok {
		name = a.Local
	} else if s, ok := text(args[0]); ok {
		name = s
	} else {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	_, err := user.Lookup(name)
	return vsl.Bool(err == nil), nil
}

// writeFn implements write(dir) (the message as an .eml file) and
// dump(dir) (the transaction as JSON) under the application directory
// (app.dirpath). dir must stay inside it. In a dry run nothing is written.
func writeFn(dump bool) func(*runCtx, *vsl.Call, []vsl.Value) (vsl.Value, error) {
	return func(rc *runCtx, c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 1 {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		dir, ok := text(args[0])
		if !ok {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		clean := filepath.Clean(dir)
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return vsl.Value{}, fmt.Errorf("%q must be a directory inside the application directory (app.dirpath), not an absolute path or one leading out of it", dir)
		}
		if rc.opts.DryRun {
			return vsl.Value{}, nil
		}
		if rc.opts.AppDir == "" {
			return vsl.Value{}, fmt.Errorf("no application directory is configured (app.dirpath)")
		}
		target := filepath.Join(rc.opts.AppDir, clean)
		if err := os.MkdirAll(target, 0o750); err != nil {
			return vsl.Value{}, fmt.Errorf("creating %s: %w", target, err)
		}
		var data []byte
		name := rc.tx.MessageID
		if dump {
			var err error
			if data, err = json.MarshalIndent(rc.tx.Snapshot(), "", "  "); err != nil {
				return vsl.Value{}, fmt.Errorf("encoding the transaction: %w", err)
			}
			name += ".json"
		} else {
			data = rc.tx.MessageText()
			name += ".eml"
		}
		if err := durable.WriteFile(filepath.Join(target, name), data, 0o640); err != nil {
			return vsl.Value{}, err
		}
		return vsl.Value{}, nil
	}
}

// ---- Message headers that carry addresses ----

// rewriteFromHeader replaces the address of the From: header, keeping the
// display name.
func (rc *runCtx) rewriteFromHeader(a MailAddr) {
	tx := rc.tx
	v, ok := tx.HeaderValue("From")
	if !ok {
		tx.headerOp(headerOp{kind: opSet, name: "From", value: "<" + a.String() + ">"})
		return
	}
	list, err := mail.ParseAddressList(v)
	if err != nil || len(list) == 0 {
		tx.headerOp(headerOp{kind: opSet, name: "From", value: "<" + a.String() + ">"})
		return
	}
	list[0].Address = a.String()
	tx.headerOp(headerOp{kind: opSet, name: "From", value: formatAddressList(list)})
}

// editToHeader removes old from the To: header and/or adds new to it.
func (rc *runCtx) editToHeader(old, new MailAddr) {
	tx := rc.tx
	v, _ := tx.HeaderValue("To")
	var list []*mail.Address
	if v != "" {
		if l, err := mail.ParseAddressList(v); err == nil {
			list = l
		}
	}
	hasOld := old != (MailAddr{})
	replaced := false
	out := list[:0]
	for _, m := range list {
		if hasOld && ParseMailAddr(m.Address).Same(old) {
			if new != (MailAddr{}) && !replaced {
				m.Address = new.String()
				replaced = true
				out = append(out, m)
			}
			continue
		}
		out = append(out, m)
	}
	if new != (MailAddr{}) && !replaced {
		if hasOld {
			return // rewriting an address the header does not hold
		}
		for _, m := range out {
			if ParseMailAddr(m.Address).Same(new) {
				return // already there
			}
		}
		out = append(out, &mail.Address{Address: new.String()})
	}
	if len(out) == 0 {
		tx.headerOp(headerOp{kind: opRemove, name: "To"})
		return
	}
	tx.headerOp(headerOp{kind: opSet, name: "To", value: formatAddressList(out)})
}

// formatAddressList renders addresses for a header: a display name made
// of plain words is written as it is, others are quoted or encoded by
// net/mail.
func formatAddressList(list []*mail.Address) string {
	parts := make([]string, len(list))
	for i, a := range list {
		switch {
		case a.Name == "":
			parts[i] = "<" + a.Address + ">"
		case plainPhrase(a.Name):
			parts[i] = a.Name + " <" + a.Address + ">"
		default:
			parts[i] = a.String()
		}
	}
	return strings.Join(parts, ", ")
}

// plainPhrase reports whether a display name needs no quoting: ASCII
// letters, digits, spaces and the atext symbols of RFC 5322.
func plainPhrase(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == ' ':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0:
		default:
			return false
		}
	}
	return strings.TrimSpace(s) == s && s != ""
}
