package config

import "testing"

func TestParseListen(t *testing.T) {
	tests := []struct {
		in               string
		network, address string
		err              string
	}{
		{in: "unix:/run/vsl-milter/milter.sock", network: "unix", address: "/run/vsl-milter/milter.sock"},
		{in: "local:/var/run/m.sock", network: "unix", address: "/var/run/m.sock"},
		{in: "inet:127.0.0.1:10030", network: "tcp", address: "127.0.0.1:10030"},
		{in: "inet:localhost:10030", network: "tcp", address: "localhost:10030"},
		{in: "inet:[::1]:10030", network: "tcp", address: "[::1]:10030"},
		{in: "inet:10030@localhost", network: "tcp", address: "localhost:10030"},
		{in: "inet:10030@127.0.0.1", network: "tcp", address: "127.0.0.1:10030"},
		{in: "inet:10030", network: "tcp", address: ":10030"},
		{in: "INET:127.0.0.1:10030", network: "tcp", address: "127.0.0.1:10030"},
		{in: "inet6:[::1]:10030", network: "tcp6", address: "[::1]:10030"},
		{in: "inet6:10030@::1", network: "tcp6", address: "[::1]:10030"},
		{in: "inet6:10030@[::1]", network: "tcp6", address: "[::1]:10030"},

		{in: "", err: `listen address "": expected "unix:/path", "inet:host:port", "inet:port@host" or "inet6:host:port"`},
		{in: "/run/m.sock", err: `listen address "/run/m.sock": expected "unix:/path", "inet:host:port", "inet:port@host" or "inet6:host:port"`},
		{in: "tcp:127.0.0.1:10030", err: `listen address "tcp:127.0.0.1:10030": unknown socket type "tcp"; expected "unix:/path", "inet:host:port", "inet:port@host" or "inet6:host:port"`},
		{in: "unix:", err: `listen address "unix:": a unix socket needs a path, as in "unix:/run/vsl-milter/milter.sock"`},
		{in: "inet:", err: `listen address "inet:": missing port, as in "inet:127.0.0.1:10030"`},
		{in: "inet:127.0.0.1", err: `listen address "inet:127.0.0.1": missing port, as in "inet:127.0.0.1:10030"`},
		{in: "inet:127.0.0.1:", err: `listen address "inet:127.0.0.1:": missing port, as in "inet:127.0.0.1:10030"`},
		{in: "inet:127.0.0.1:milter", err: `listen address "inet:127.0.0.1:milter": port "milter" is not a number from 1 to 65535`},
		{in: "inet:127.0.0.1:70000", err: `listen address "inet:127.0.0.1:70000": port "70000" is not a number from 1 to 65535`},
		{in: "inet:0@localhost", err: `listen address "inet:0@localhost": port "0" is not a number from 1 to 65535`},
		{in: "inet:10030@", err: `listen address "inet:10030@": missing host after "10030@"`},
		{in: "inet6:::1:10030", err: `listen address "inet6:::1:10030": an IPv6 address needs brackets, as in "inet6:[::1]:10030"`},
	}
	for _, tt := range tests {
		network, address, err := ParseListen(tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseListen(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || network != tt.network || address != tt.address {
			t.Errorf("ParseListen(%q) = (%q, %q, %v), want (%q, %q, nil)", tt.in, network, address, err, tt.network, tt.address)
		}
	}
}
