package smtpd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vsl-milter/vsl-milter/config"
)

// errNoTLS is wrapped by the errors of what needs TLS when none is
// configured.
var errNoTLS = errors.New("no TLS configured ([server.tls] security_level is None and Options.TLS is nil)")

// buildTLS returns the TLS configuration [server.tls] describes, reading
// its certificate and private key, or nil when security_level is None.
func buildTLS(c *config.Config) (*tls.Config, error) {
	t := &c.Server.TLS
	if t.SecurityLevel == config.SecurityNone || t.SecurityLevel == "" {
		return nil, nil
	}
	certPEM, err := readPEM(c, t.Certificate, "certificate")
	if err != nil {
		return nil, err
	}
	keyPEM, err := readPEM(c, t.PrivateKey, "private_key")
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("smtpd: server.tls certificate and private_key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	if err := setVersions(cfg, t.ProtocolVersions); err != nil {
		return nil, err
	}
	if err := setCipherSuites(cfg, t.CipherSuites); err != nil {
		return nil, err
	}
	return cfg, nil
}

// readPEM returns an inline PEM block, or reads the file it names
// (relative to the configuration file's directory).
func readPEM(c *config.Config, v, key string) ([]byte, error) {
	if s := strings.TrimSpace(v); strings.HasPrefix(s, "-----BEGIN") {
		return []byte(s), nil
	}
	if v == "" {
		return nil, fmt.Errorf("smtpd: server.tls.%s is not set", key)
	}
	path := v
	if !filepath.IsAbs(path) && c.Path != "" {
		path = filepath.Join(filepath.Dir(c.Path), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("smtpd: reading server.tls.%s: %w", key, err)
	}
	return b, nil
}

// setVersions sets the lowest and highest TLS versions allowed from
// server.tls.protocol_version ("TLSv1.2", "TLSv1.3").
func setVersions(cfg *tls.Config, names []string) error {
	for _, n := range names {
		var v uint16
		switch n {
		case "TLSv1.2":
			v = tls.VersionTLS12
		case "TLSv1.3":
			v = tls.VersionTLS13
		default:
			return fmt.Errorf("smtpd: server.tls.protocol_version: unknown version %q", n)
		}
		if cfg.MinVersion == 0 || v < cfg.MinVersion {
			cfg.MinVersion = v
		}
		if v > cfg.MaxVersion {
			cfg.MaxVersion = v
		}
	}
	return nil
}

// setCipherSuites sets the TLS 1.2 cipher suites of server.tls.cipher_suite
// (Go's names). Go does not let TLS 1.3 suites be chosen: they are all
// enabled. When only TLS 1.3 suites are listed, TLS 1.2 is turned off.
func setCipherSuites(cfg *tls.Config, names []string) error {
	if len(names) == 0 {
		return nil
	}
	known := map[string]*tls.CipherSuite{}
	for _, cs := range tls.CipherSuites() {
		known[cs.Name] = cs
	}
	var ids []uint16
	for _, n := range names {
		cs, ok := known[n]
		if !ok {
			return fmt.Errorf("smtpd: server.tls.cipher_suite: %q is not a cipher suite Go supports", n)
		}
		if slices.Equal(cs.SupportedVersions, []uint16{tls.VersionTLS13}) {
			continue
		}
		ids = append(ids, cs.ID)
	}
	if len(ids) > 0 {
		cfg.CipherSuites = ids
		return nil
	}
	if cfg.MaxVersion != 0 && cfg.MaxVersion < tls.VersionTLS13 {
		return errors.New("smtpd: server.tls.cipher_suite lists only TLS 1.3 suites but protocol_version does not allow TLS 1.3")
	}
	cfg.MinVersion = tls.VersionTLS13
	return nil
}
