package service

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// Default SMTP delegation timeouts when the declaration gives none: vSMTP
// v1 waited 60 seconds, v2 30 seconds.
const (
	DefaultSMTPTimeoutV1 = 60 * time.Second
	DefaultSMTPTimeoutV2 = 30 * time.Second
)

// SMTP is an smtp service: the target of the delegate directive. The
// message goes by SMTP to Address and the filter sends it back to Receiver.
// Declaring one opens no connection. Do not change an SMTP once it is in use.
type SMTP struct {
	Name     string        // the service's name (v2: the delegator address)
	Address  string        // delegator.address, host:port
	Timeout  time.Duration // delegator.timeout
	Receiver string        // host:port where the filter sends the message back
}

// buildSMTP builds an smtp service from its parameter map.
func buildSMTP(name string, v vsl.Value, d dialect) (*SMTP, error) {
	o, err := newOptions(v, "the parameters of an smtp service")
	if err != nil {
		return nil, err
	}
	s := &SMTP{Name: name}
	del, err := o.sub("delegator")
	if err != nil {
		return nil, err
	}
	if s.Address, err = hostPort(del, "address"); err != nil {
		return nil, err
	}
	def := DefaultSMTPTimeoutV2
	if d == dialectV1 {
		def = DefaultSMTPTimeoutV1
	}
	if s.Timeout, err = del.duration("timeout", def); err != nil {
		return nil, err
	}
	if err := del.done(); err != nil {
		return nil, err
	}
	if s.Receiver, err = hostPort(o, "receiver"); err != nil {
		return nil, err
	}
	if err := o.done(); err != nil {
		return nil, err
	}
	if s.Name == "" {
		s.Name = s.Address
	}
	return s, nil
}

// hostPort reads a host:port parameter: a non-empty host (an IP address or
// a name) and a port from 1 to 65535.
func hostPort(o *options, key string) (string, error) {
	s, _, err := o.str(key, true)
	if err != nil {
		return "", err
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("key %q: %q is not host:port: %w", o.prefix+key, s, err)
	}
	if host == "" {
		return "", fmt.Errorf("key %q: %q has no host (write e.g. \"127.0.0.1:10026\")", o.prefix+key, s)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("key %q: %q has an invalid port %q (1 to 65535)", o.prefix+key, s, port)
	}
	return s, nil
}

// TypeName returns "smtp".
func (s *SMTP) TypeName() string { return TypeSMTP }

// String returns "service NAME (smtp)".
func (s *SMTP) String() string { return "service " + s.Name + " (smtp)" }

// Equal reports whether other is this very service.
func (s *SMTP) Equal(other vsl.Value) (bool, bool) { return sameHost(s, other) }

// Attr exposes the declaration to scripts: name, address, timeout,
// receiver, and delegator (#{address, timeout}) as declared.
func (s *SMTP) Attr(name string) (vsl.Value, bool, error) {
	switch name {
	case "name":
		return vsl.String(s.Name), true, nil
	case "address":
		return vsl.String(s.Address), true, nil
	case "timeout":
		return vsl.String(s.Timeout.String()), true, nil
	case "receiver":
		return vsl.String(s.Receiver), true, nil
	case "delegator":
		return vsl.NewMap(map[string]vsl.Value{
			"address": vsl.String(s.Address),
			"timeout": vsl.String(s.Timeout.String()),
		}), true, nil
	}
	return vsl.Value{}, false, nil
}
