package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// listenSpellings is what a milter listen address may look like.
const listenSpellings = `"unix:/path", "inet:host:port", "inet:port@host" or "inet6:host:port"`

// ParseListen splits a milter socket specification, as written in Postfix's
// smtpd_milters or Sendmail's InputMailFilters, into the network and address
// that net.Listen takes:
//
//	unix:/run/m.sock        -> ("unix", "/run/m.sock")   (local:/run/m.sock too)
//	inet:127.0.0.1:10030    -> ("tcp", "127.0.0.1:10030")
//	inet:[::1]:10030        -> ("tcp", "[::1]:10030")
//	inet:10030@localhost    -> ("tcp", "localhost:10030") (libmilter's spelling)
//	inet:10030              -> ("tcp", ":10030")          (every interface, as libmilter)
//	inet6:[::1]:10030       -> ("tcp6", "[::1]:10030")    (inet6:10030@::1 too)
//
// Ports must be numbers from 1 to 65535.
func ParseListen(s string) (network, address string, err error) {
	network, address, reason := parseListen(s)
	if reason != "" {
		return "", "", fmt.Errorf("listen address %q: %s", s, reason)
	}
	return network, address, nil
}

// parseListen is ParseListen with the problem, if any, as a bare reason.
func parseListen(s string) (network, address, reason string) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", "expected " + listenSpellings
	}
	switch strings.ToLower(scheme) {
	case "unix", "local":
		if rest == "" {
			return "", "", `a unix socket needs a path, as in "unix:/run/vsl-milter/milter.sock"`
		}
		return "unix", rest, ""
	case "inet":
		network = "tcp"
	case "inet6":
		network = "tcp6"
	default:
		return "", "", fmt.Sprintf("unknown socket type %q; expected %s", scheme, listenSpellings)
	}

	var host, port string
	switch {
	case strings.Contains(rest, "@"): // libmilter: port@host
		port, host, _ = strings.Cut(rest, "@")
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host == "" {
			return "", "", fmt.Sprintf("missing host after %q", port+"@")
		}
	case !strings.Contains(rest, ":"): // libmilter: a port alone listens everywhere
		if _, err := strconv.Atoi(rest); err != nil {
			return "", "", fmt.Sprintf("missing port, as in %q", scheme+":127.0.0.1:10030")
		}
		port = rest
	default:
		var err error
		host, port, err = net.SplitHostPort(rest)
		if err != nil {
			if strings.Count(rest, ":") > 1 && !strings.HasPrefix(rest, "[") {
				return "", "", fmt.Sprintf("an IPv6 address needs brackets, as in %q", scheme+":[::1]:10030")
			}
			return "", "", fmt.Sprintf("expected host:port after %q", scheme+":")
		}
	}
	if port == "" {
		return "", "", fmt.Sprintf("missing port, as in %q", scheme+":127.0.0.1:10030")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Sprintf("port %q is not a number from 1 to 65535", port)
	}
	return network, net.JoinHostPort(host, port), ""
}

// checkHostPort reports why s is not a "host:port" TCP address with a
// numeric port, or "" when it is one. An empty host means every interface.
func checkHostPort(s string) string {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return `expected host:port, as in "127.0.0.1:9464"`
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("port %q is not a number from 1 to 65535", port)
	}
	return ""
}
