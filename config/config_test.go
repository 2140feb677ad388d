package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func addrs(s ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(s))
	for _, a := range s {
		out = append(out, netip.MustParseAddrPort(a))
	}
	return out
}

func TestLoadSeedFlat(t *testing.T) {
	got, err := Load("testdata/seed_flat.toml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	host, _ := os.Hostname()

	want := Default()
	want.Path = mustAbs(t, "testdata/seed_flat.toml")
	want.VersionRequirement = ">=1.0.0"
	want.Server.Domain = host // domain = ""
	// addr = [""] and friends: not set, so the loopback defaults stay.
	want.Server.TLS.SecurityLevel = SecurityMay
	want.Server.TLS.HandshakeTimeout = 200 * time.Millisecond
	want.Server.TLS.ProtocolVersions = []string{"TLSv1.2", "TLSv1.3"}
	want.Server.TLS.Certificate = "/etc/letsencrypt/live/"
	want.Server.TLS.PrivateKey = "/etc/letsencrypt/live/"
	want.Server.SMTP.Auth = &Auth{Mechanisms: []string{"PLAIN", "LOGIN", "CRAM-MD5"}, AttemptCountMax: -1}
	want.Server.Logs.Level = "warn" // server = "warn"
	want.Log.Level = "warn"         // follows the server's level
	want.App.VSL.Filepath = "/etc/vsmtp/rules/main.vsl"

	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(seed_flat.toml):\n got %+v\nwant %+v", got, want)
	}
	if got.RulesPath() != "/etc/vsmtp/rules/main.vsl" {
		t.Errorf("RulesPath() = %q, want /etc/vsmtp/rules/main.vsl", got.RulesPath())
	}
	if n := len(got.Server.Interfaces.Addr); n != 0 {
		t.Errorf("Interfaces.Addr = %v, want none: the seed's addr = [\"\"] names no listener", got.Server.Interfaces.Addr)
	}
}

func TestLoadSectioned(t *testing.T) {
	got, err := Load("testdata/sectioned.toml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &Config{
		Path:               mustAbs(t, "testdata/sectioned.toml"),
		VersionRequirement: ">=1.0.0, <2.0.0",
		Server: Server{
			Domain:           "mx.example.org",
			ClientCountMax:   32,
			MessageSizeLimit: 20_000_000,
			System: System{
				User: "vsmtp", Group: "mail", GroupLocal: "mail",
				ThreadPool: ThreadPool{Receiver: 4, Processing: 5, Delivery: 7},
			},
			Interfaces: Interfaces{
				Addr:            addrs("192.0.2.1:25", "[2001:db8::1]:25"),
				AddrSubmission:  addrs("192.0.2.1:587"),
				AddrSubmissions: addrs(),
			},
			Logs: ServerLogs{
				Filepath:     "/var/log/vsmtp/server.log",
				Format:       "{d} {l} - ",
				Level:        "warn",
				Levels:       map[string]string{"receiver": "info", "rule_engine": "debug"},
				SizeLimit:    20_971_520,
				ArchiveCount: 5,
			},
			Queues: Queues{
				Dirpath: "/var/spool/vsmtp-test",
				Working: WorkingQueue{ChannelSize: 16},
				Delivery: DeliveryQueue{
					ChannelSize: 8, DeferredRetryMax: 10, DeferredRetryPeriod: 90 * time.Minute,
				},
			},
			TLS: TLS{
				SecurityLevel:     SecurityEncrypt,
				PreemptCipherlist: true,
				HandshakeTimeout:  2 * time.Second,
				ProtocolVersions:  []string{"TLSv1.3"},
				CipherSuites:      []string{"TLS_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
				Certificate:       "/etc/vsmtp/tls/mx.crt",
				PrivateKey:        "/etc/vsmtp/tls/mx.key",
			},
			SMTP: SMTP{
				RcptCountMax:      25,
				DisableEHLO:       true,
				RequiredExtension: []string{"STARTTLS", "8BITMIME"},
				Error:             SMTPError{SoftCount: 5, HardCount: -1, Delay: 500 * time.Millisecond},
				TimeoutClient: ClientTimeouts{
					Connect:  50 * time.Millisecond,
					Helo:     time.Minute,
					MailFrom: 2 * time.Minute,
					RcptTo:   24 * time.Hour,
					Data:     10 * time.Second,
				},
				Codes: map[string]Reply{
					"Greetings":   {Code: 220, Text: "{domain} ESMTP Service ready"},
					"Denied":      {Code: 554, Enhanced: "5.7.1", Text: "go away"},
					"TlsRequired": {Code: 451, Enhanced: "5.7.3", Text: "STARTTLS is required to send mail"},
				},
				Auth: &Auth{
					MustBeAuthenticated:             true,
					EnableDangerousMechanismInClair: true,
					Mechanisms:                      []string{"PLAIN", "CRAM-MD5"},
					AttemptCountMax:                 3,
				},
			},
			DNS: DNS{
				Type: DNSGoogle,
				Options: DNSOptions{
					Timeout: 3 * time.Second, Attempts: 4, Rotate: true, DNSSEC: true,
					IPStrategy: "Ipv6thenIpv4", CacheSize: 64, UseHostsFile: false, NumConcurrentReqs: 1,
				},
			},
		},
		App: App{
			Dirpath: "/var/spool/vsmtp/app-test",
			VSL:     AppVSL{Filepath: "rules/main.vsl"},
			Logs: AppLogs{
				Filepath: "/var/log/vsmtp/rules.log", Level: "trace", Format: "{d} - {m}{n}",
				SizeLimit: 1_048_576, ArchiveCount: 0,
			},
		},
		Milter: Milter{
			Listen:         "unix:/run/vsl-milter/milter.sock",
			SocketMode:     0o600,
			SocketOwner:    "postfix",
			SocketGroup:    "postfix",
			OnError:        OnErrorDeny,
			StageDeadline:  5 * time.Second,
			MaxMessageSize: 1_048_576,
			ShutdownGrace:  0,
		},
		Metrics:  Metrics{Listen: ""},
		Log:      Log{Level: "debug", JSON: true},
		VSL:      VSL{MaxOperations: 50_000, MaxCallDepth: 32},
		Delivery: Delivery{MaildirRoot: "/var/mail/maildirs", MboxRoot: "/var/mail", ForwardTimeout: 2 * time.Minute},
		Resolver: Resolver{MX: map[string]string{"example.net": "127.0.0.1:2526", "example.com": "[::1]:2527"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(sectioned.toml):\n got %+v\nwant %+v", got, want)
	}
	if want := filepath.Join(filepath.Dir(want.Path), "rules", "main.vsl"); got.RulesPath() != want {
		t.Errorf("RulesPath() = %q, want %q", got.RulesPath(), want)
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	host, _ := os.Hostname()
	tests := []struct {
		name      string
		got, want any
	}{
		{"Path", c.Path, ""},
		{"RulesPath", c.RulesPath(), ""},
		{"Milter.Listen", c.Milter.Listen, "inet:127.0.0.1:10030"},
		{"Milter.SocketMode", c.Milter.SocketMode, fs.FileMode(0o660)},
		{"Milter.OnError", c.Milter.OnError, OnErrorTempfail},
		{"Milter.StageDeadline", c.Milter.StageDeadline, 10 * time.Second},
		{"Milter.MaxMessageSize", c.Milter.MaxMessageSize, int64(10 << 20)},
		{"Milter.ShutdownGrace", c.Milter.ShutdownGrace, 30 * time.Second},
		{"Metrics.Listen", c.Metrics.Listen, "127.0.0.1:9464"},
		{"Log.Level", c.Log.Level, "info"},
		{"Log.JSON", c.Log.JSON, false},
		{"VSL.MaxOperations", c.VSL.MaxOperations, int64(1_000_000)},
		{"VSL.MaxCallDepth", c.VSL.MaxCallDepth, 64},
		{"Delivery.ForwardTimeout", c.Delivery.ForwardTimeout, time.Minute},
		{"Delivery.MaildirRoot", c.Delivery.MaildirRoot, ""},
		{"Resolver.MX", c.Resolver.MX, map[string]string(nil)},
		{"Server.Domain", c.Server.Domain, host},
		{"Server.ClientCountMax", c.Server.ClientCountMax, 16},
		{"Server.Interfaces", c.Server.Interfaces, Interfaces{}},
		{"Server.Logs.Level", c.Server.Logs.Level, "warn"},
		{"Server.TLS.SecurityLevel", c.Server.TLS.SecurityLevel, SecurityNone},
		{"Server.TLS.ProtocolVersions", c.Server.TLS.ProtocolVersions, []string{"TLSv1.2", "TLSv1.3"}},
		{"Server.SMTP.Auth", c.Server.SMTP.Auth, (*Auth)(nil)},
		{"Server.SMTP.RcptCountMax", c.Server.SMTP.RcptCountMax, 1000},
		{"Server.SMTP.TimeoutClient.Data", c.Server.SMTP.TimeoutClient.Data, 5 * time.Minute},
		{"Server.Queues.Delivery.DeferredRetryPeriod", c.Server.Queues.Delivery.DeferredRetryPeriod, 5 * time.Minute},
		{"Server.DNS.Type", c.Server.DNS.Type, DNSSystem},
		{"App.Logs.Level", c.App.Logs.Level, "warn"},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("Default().%s = %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}

	// An empty file is the default configuration, and the default passes
	// validation.
	empty, err := Parse("empty.toml", nil)
	if err != nil {
		t.Fatalf("Parse(empty): %v", err)
	}
	empty.Path = ""
	if !reflect.DeepEqual(empty, c) {
		t.Errorf("Parse(empty) = %+v, want Default() = %+v", empty, c)
	}
	// Each call returns a configuration of its own.
	Default().Server.TLS.ProtocolVersions[0] = "changed"
	if Default().Server.TLS.ProtocolVersions[0] != "TLSv1.2" {
		t.Error("Default() shares state between calls")
	}
}

// TestParseValues pins how individual spellings are read.
func TestParseValues(t *testing.T) {
	tests := []struct {
		name string
		src  string
		get  func(*Config) any
		want any
	}{
		{"log level as a string", "[server.logs]\nlevel = \"debug\"",
			func(c *Config) any { return []string{c.Server.Logs.Level, c.Log.Level} }, []string{"debug", "debug"}},
		{"log level as a list of directives", "[server.logs]\nlevel = [\"error\", \"vsmtp_server::receiver=info\"]",
			func(c *Config) any { return []any{c.Server.Logs.Level, c.Server.Logs.Levels} },
			[]any{"error", map[string]string{"vsmtp_server::receiver": "info"}}},
		{"inline level table", "[server.logs]\nlevel = { default = \"off\" }",
			func(c *Config) any { return []string{c.Server.Logs.Level, c.Log.Level} }, []string{"off", "error"}},
		{"own log level wins", "server = \"error\"\n[log]\nlevel = \"trace\"",
			func(c *Config) any { return []string{c.Server.Logs.Level, c.Log.Level} }, []string{"error", "trace"}},
		{"protocol_version as one string", "[server.tls]\nsecurity_level = \"None\"\nprotocol_version = \"TLSv1.2\"",
			func(c *Config) any { return c.Server.TLS.ProtocolVersions }, []string{"TLSv1.2"}},
		{"protocol_version from a minimum", "[server.tls]\nsecurity_level = \"None\"\nprotocol_version = \">=0x0303\"",
			func(c *Config) any { return c.Server.TLS.ProtocolVersions }, []string{"TLSv1.2", "TLSv1.3"}},
		{"security level in any case", "[server.tls]\nsecurity_level = \"none\"",
			func(c *Config) any { return c.Server.TLS.SecurityLevel }, SecurityNone},
		{"empty entries of an address list are dropped", "addr = [\"\", \"10.0.0.1:2525\"]",
			func(c *Config) any { return c.Server.Interfaces.Addr }, addrs("10.0.0.1:2525")},
		{"an explicit empty list means none", "[server.interfaces]\naddr = []",
			func(c *Config) any { return c.Server.Interfaces.Addr }, addrs()},
		{"a lone address string", "[server.interfaces]\naddr_submission = \"127.0.0.2:587\"",
			func(c *Config) any { return c.Server.Interfaces.AddrSubmission }, addrs("127.0.0.2:587")},
		{"empty metrics listen disables", "[metrics]\nlisten = \"\"",
			func(c *Config) any { return c.Metrics.Listen }, ""},
		{"empty milter listen keeps the default", "[milter]\nlisten = \"\"",
			func(c *Config) any { return c.Milter.Listen }, "inet:127.0.0.1:10030"},
		{"libmilter listen spelling", "[milter]\nlisten = \"inet:10030@localhost\"",
			func(c *Config) any { return c.Milter.Listen }, "inet:10030@localhost"},
		{"socket mode without a leading zero", "[milter]\nsocket_mode = \"640\"",
			func(c *Config) any { return c.Milter.SocketMode }, fs.FileMode(0o640)},
		{"duration with several units", "[milter]\nshutdown_grace = \"1m 30s\"",
			func(c *Config) any { return c.Milter.ShutdownGrace }, 90 * time.Second},
		{"auth section with defaults", "[server.smtp.auth]",
			func(c *Config) any { return c.Server.SMTP.Auth }, &Auth{Mechanisms: []string{"PLAIN", "LOGIN", "CRAM-MD5"}, AttemptCountMax: -1}},
		{"flat and sectioned auth keys merge", "must_be_authenticated = true\n[server.smtp.auth]\nattempt_count_max = 2",
			func(c *Config) any { return c.Server.SMTP.Auth }, &Auth{MustBeAuthenticated: true, Mechanisms: []string{"PLAIN", "LOGIN", "CRAM-MD5"}, AttemptCountMax: 2}},
		{"multi-line reply", "[server.smtp.codes]\nEhloPain = \"250-{domain}\\r\\n250 8BITMIME\\r\\n\"",
			func(c *Config) any { return c.Server.SMTP.Codes["EhloPain"] }, Reply{Code: 250, Text: "{domain}\r\n250 8BITMIME"}},
		{"inline mx table", "[resolver]\nmx = { \"example.net\" = \"localhost:2526\" }",
			func(c *Config) any { return c.Resolver.MX }, map[string]string{"example.net": "localhost:2526"}},
		{"inline PEM certificate", "[server.tls]\nsecurity_level = \"May\"\nprivate_key = \"/k\"\ncertificate = \"\"\"\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\"\"\"",
			func(c *Config) any { return c.Server.TLS.Certificate }, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
		{"reply of a code alone", "[server.smtp.codes]\nOk = \"250\"",
			func(c *Config) any { return c.Server.SMTP.Codes }, map[string]Reply{"Ok": {Code: 250}}},
		{"reply table without enhanced code", "[server.smtp.codes]\nHelp = { code = 214, text = \"see https://example.org\" }",
			func(c *Config) any { return c.Server.SMTP.Codes["Help"] }, Reply{Code: 214, Text: "see https://example.org"}},
		{"relative rules path", "filepath = \"main.vsl\"",
			func(c *Config) any { return c.RulesPath() }, filepath.Join("/etc/vsmtp", "main.vsl")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("/etc/vsmtp/vsmtp.toml", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse:\n%v", err)
			}
			if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// TestParseErrors pins the exact message of each kind of problem.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"syntax error", "[milter]\nlisten = unix:/x\n",
			`vsmtp.toml:2:10: syntax error: expected value but found "unix" instead`},
		{"unknown key in a section", "[server.smtp]\nrcpt_max = 3",
			"vsmtp.toml:2:1: server.smtp.rcpt_max: unknown key in [server.smtp]; valid keys: auth, codes, disable_ehlo, error, rcpt_count_max, required_extension, timeout_client"},
		{"unknown section", "[milter]\nlisten = \"inet:127.0.0.1:1\"\n\n[miltr.x]\ny = 1",
			"vsmtp.toml:4:1: miltr: unknown key at the top level; valid keys: app, delivery, log, metrics, milter, resolver, server, version_requirement, vsl; in the flat form also: addr, addr_submission, addr_submissions, attempt_count_max, certificate, cipher_suite, domain, enable_dangerous_mechanism_in_clair, filepath, handshake_timeout, mechanisms, must_be_authenticated, preempt_cipherlist, private_key, protocol_version, security_level"},
		{"keys are case-sensitive", "[log]\nLevel = \"info\"",
			"vsmtp.toml:2:1: log.Level: unknown key in [log]; valid keys: json, level"},
		{"wrong type", "[server]\nclient_count_max = \"many\"",
			`vsmtp.toml:2:1: server.client_count_max: invalid value "many": expected an integer`},
		{"a table expected", "milter = 5",
			"vsmtp.toml:1:1: milter: invalid value 5: expected a table"},
		{"bad duration", "[server.queues.delivery]\ndeferred_retry_period = \"5 minutes\"",
			`vsmtp.toml:2:1: server.queues.delivery.deferred_retry_period: invalid value "5 minutes": expected a duration such as "200ms", "5s", "5m", "1h", "1d" or "1h 30m" (a number and its unit must not be separated by a space)`},
		{"duration as a number", "handshake_timeout = 200",
			`vsmtp.toml:1:1: handshake_timeout: invalid value 200: expected a duration such as "200ms", "5s", "5m", "1h", "1d" or "1h 30m"`},
		{"bad listen spelling", "[milter]\nlisten = \"tcp:127.0.0.1:10030\"",
			`vsmtp.toml:2:1: milter.listen: invalid value "tcp:127.0.0.1:10030": unknown socket type "tcp"; expected "unix:/path", "inet:host:port", "inet:port@host" or "inet6:host:port"`},
		{"listen without a port", "[milter]\nlisten = \"inet:127.0.0.1\"",
			`vsmtp.toml:2:1: milter.listen: invalid value "inet:127.0.0.1": missing port, as in "inet:127.0.0.1:10030"`},
		{"bad on_error", "[milter]\non_error = \"maybe\"",
			`vsmtp.toml:2:1: milter.on_error: invalid value "maybe": expected one of "tempfail", "deny", "accept"`},
		{"stage deadline too long", "[milter]\nstage_deadline = \"45s\"",
			`vsmtp.toml:2:1: milter.stage_deadline: invalid value "45s": expected more than 0s and less than 30s (Postfix's default milter_command_timeout)`},
		{"stage deadline zero", "[milter]\nstage_deadline = \"0s\"",
			`vsmtp.toml:2:1: milter.stage_deadline: invalid value "0s": expected more than 0s and less than 30s (Postfix's default milter_command_timeout)`},
		{"socket mode as an integer", "[milter]\nsocket_mode = 660",
			`vsmtp.toml:2:1: milter.socket_mode: invalid value 660: expected permission bits as an octal string such as "0660"`},
		{"bad metrics listen", "[metrics]\nlisten = \"localhost\"",
			`vsmtp.toml:2:1: metrics.listen: invalid value "localhost": expected host:port, as in "127.0.0.1:9464", or "off"`},
		{"bad log level", "[log]\nlevel = \"off\"",
			`vsmtp.toml:2:1: log.level: invalid value "off": expected one of "trace", "debug", "info", "warn", "error"`},
		{"bad flat server key", "server = 3",
			`vsmtp.toml:1:1: server: invalid value 3: expected a [server] table, or in the flat form a log level such as "warn"`},
		{"bad address", "addr = [\"0.0.0.0\"]",
			`vsmtp.toml:1:1: addr: invalid value ["0.0.0.0"]: "0.0.0.0" is not an IP address and port such as "127.0.0.1:25" or "[::1]:25"`},
		{"bad TLS version", "[server.tls]\nsecurity_level = \"None\"\nprotocol_version = [\"TLSv1.2\", \"SSLv3\"]",
			`vsmtp.toml:3:1: server.tls.protocol_version: invalid value ["TLSv1.2", "SSLv3"]: "SSLv3" is not a TLS version; expected "TLSv1.2", "TLSv1.3" (or "0x0303", "0x0304"), a list of them, or "^TLSv1.2" for that version and later`},
		{"missing security level", "[server.tls]\ncertificate = \"/c\"",
			`vsmtp.toml:1:1: server.tls: missing key security_level: expected "None", "May" or "Encrypt"`},
		{"certificate required", "[server.tls]\nsecurity_level = \"Encrypt\"\nprivate_key = \"/k\"",
			`vsmtp.toml:2:1: server.tls.certificate: missing: required when security_level is "Encrypt"`},
		{"certificate required, flat form", "security_level = \"May\"\ncertificate = \"/c\"",
			`vsmtp.toml:1:1: private_key: missing: required when security_level is "May"`},
		{"broken inline PEM", "[server.tls]\nsecurity_level = \"May\"\ncertificate = \"/c\"\nprivate_key = \"-----BEGIN PRIVATE KEY----- oops\"",
			`vsmtp.toml:4:1: server.tls.private_key: invalid value "-----BEGIN PRIVATE KEY----- oops": expected a file path or a well-formed inline PEM block`},
		{"flat and sectioned both set", "domain = \"a.example\"\n[server]\ndomain = \"b.example\"",
			"vsmtp.toml:3:1: server.domain: already set by domain on line 1; set it only once"},
		{"unknown reply name", "[server.smtp.codes]\nGreeting = \"220 hi\"",
			"vsmtp.toml:2:1: server.smtp.codes.Greeting: unknown reply name; valid names: " + strings.Join(replyNames(), ", ")},
		{"reply code out of range", "[server.smtp.codes.Denied]\ncode = 700\ntext = \"no\"",
			"vsmtp.toml:1:1: server.smtp.codes.Denied: invalid value a table: reply code 700 is not from 200 to 599"},
		{"bad mechanism", "mechanisms = [\"PLAIN\", \"NTLM\"]",
			`vsmtp.toml:1:1: mechanisms: invalid value ["PLAIN", "NTLM"]: "NTLM" is not a SASL mechanism; expected some of "PLAIN", "LOGIN", "CRAM-MD5", "ANONYMOUS"`},
		{"custom DNS", "[server.dns]\ntype = \"custom\"",
			`vsmtp.toml:2:1: server.dns.type: invalid value "custom": vSMTP's "custom" resolver is not supported; expected one of "system", "google", "cloudflare"`},
		{"client count zero", "[server]\nclient_count_max = 0",
			"vsmtp.toml:2:1: server.client_count_max: invalid value 0: expected -1 (no limit) or a positive number"},
		{"relative maildir root", "[delivery]\nmaildir_root = \"mail\"",
			`vsmtp.toml:2:1: delivery.maildir_root: invalid value "mail": expected an absolute path`},
		{"bad version requirement", "version_requirement = \"one point oh\"",
			`vsmtp.toml:1:1: version_requirement: invalid value "one point oh": expected a version requirement such as ">=1.0.0" or ">=1.0.0, <2.0.0"`},
		{"bad mx target", "[resolver.mx]\n\"example.net\" = \"127.0.0.1\"",
			`vsmtp.toml:2:1: resolver.mx."example.net": invalid value "127.0.0.1": expected host:port, as in "127.0.0.1:9464"`},
		{"duplicate mx domain", "[resolver.mx]\n\"example.net\" = \"127.0.0.1:25\"\n\"Example.net.\" = \"127.0.0.1:26\"",
			`vsmtp.toml:3:1: resolver.mx."Example.net.": invalid key: expected a domain name, once (keys are compared in lower case, without a trailing dot)`},
		{"bad level in a level table", "[server.logs.level]\ndefault = \"loud\"",
			`vsmtp.toml:1:1: server.logs.level: invalid value a table: default: expected one of "trace", "debug", "info", "warn", "error", "off"`},
		{"not a boolean", "[log]\njson = \"yes\"",
			`vsmtp.toml:2:1: log.json: invalid value "yes": expected true or false`},
		{"not a list of strings", "[server.smtp]\nrequired_extension = [\"STARTTLS\", 8]",
			`vsmtp.toml:2:1: server.smtp.required_extension: invalid value ["STARTTLS", 8]: expected a list of strings, found 8 in it`},
		{"unknown cipher suite", "cipher_suite = [\"TLS_RSA_WITH_RC4_128_SHA\"]",
			`vsmtp.toml:1:1: cipher_suite: invalid value ["TLS_RSA_WITH_RC4_128_SHA"]: "TLS_RSA_WITH_RC4_128_SHA" is not a supported cipher suite; expected some of ` + strings.Join(defaultCipherSuites(), ", ")},
		{"unknown key in a reply table", "[server.smtp.codes.Help]\ncode = 214\ntxt = \"see the docs\"",
			"vsmtp.toml:1:1: server.smtp.codes.Help: invalid value a table: txt: unknown key; expected code, enhanced and text"},
		{"bad enhanced code", "[server.smtp.codes]\nDenied = { code = 554, enhanced = \"9.9\" }",
			`vsmtp.toml:2:1: server.smtp.codes.Denied: invalid value a table: enhanced: expected an enhanced status code such as "5.7.1"`},
		{"reply without a code", "[server.smtp.codes]\nDenied = \"go away\"",
			`vsmtp.toml:2:1: server.smtp.codes.Denied: invalid value "go away": expected a reply such as "554 5.7.1 go away" or a table such as { code = 554, enhanced = "5.7.1", text = "go away" }`},
		{"zero operation budget", "[vsl]\nmax_operations = 0",
			"vsmtp.toml:2:1: vsl.max_operations: invalid value 0: expected a positive number (rules on live mail must be bounded)"},
		{"indented inline key", "[server]\ntls = { security_level = \"May\", certificate = 1, private_key = \"/k\" }",
			"vsmtp.toml:2:33: server.tls.certificate: invalid value 1: expected a string"},
		{"every problem, in file order",
			"[milter]\non_error = \"maybe\"\nstage_deadline = \"45s\"\nlisten = \"tcp:1\"\n\n[server]\nclient_count_max = \"x\"\nbogus = true\n",
			`vsmtp.toml:2:1: milter.on_error: invalid value "maybe": expected one of "tempfail", "deny", "accept"` + "\n" +
				`vsmtp.toml:3:1: milter.stage_deadline: invalid value "45s": expected more than 0s and less than 30s (Postfix's default milter_command_timeout)` + "\n" +
				`vsmtp.toml:4:1: milter.listen: invalid value "tcp:1": unknown socket type "tcp"; expected "unix:/path", "inet:host:port", "inet:port@host" or "inet6:host:port"` + "\n" +
				`vsmtp.toml:7:1: server.client_count_max: invalid value "x": expected an integer` + "\n" +
				`vsmtp.toml:8:1: server.bogus: unknown key in [server]; valid keys: client_count_max, dns, domain, interfaces, logs, message_size_limit, queues, smtp, system, tls`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("vsmtp.toml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want error:\n%s", c, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			var es Errors
			if !errors.As(err, &es) || len(es) != strings.Count(tt.want, "\n")+1 {
				t.Errorf("error is %T with %d problems, want Errors with one per line", err, len(es))
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := Load("testdata/does-not-exist.toml")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing file) = %v, want an error wrapping fs.ErrNotExist", err)
	}
	if want := "load configuration: open testdata/does-not-exist.toml: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("Load(missing file) error = %v, want %q", err, want)
	}

	_, err = Load("testdata/invalid.toml")
	want := []*Error{
		{File: "testdata/invalid.toml", Line: 6, Col: 1, Key: "server.domain", Msg: "already set by domain on line 3; set it only once"},
		{File: "testdata/invalid.toml", Line: 9, Col: 1, Key: "milter.max_message_size", Msg: "invalid value -1: expected a positive number of bytes"},
		{File: "testdata/invalid.toml", Line: 10, Col: 1, Key: "milter.shutdown_grace", Msg: `invalid value "soon": expected a duration such as "200ms", "5s", "5m", "1h", "1d" or "1h 30m" (expected a number at "soon")`},
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Load(invalid.toml) = %v, want Errors", err)
	}
	if !reflect.DeepEqual([]*Error(es), want) {
		t.Errorf("Load(invalid.toml):\n got %v\nwant %v", es, Errors(want))
	}
	var one *Error
	if !errors.As(err, &one) || one.Line != 6 {
		t.Errorf("errors.As(*Error) = %v, want the first problem", one)
	}
}

func TestRulesPath(t *testing.T) {
	tests := []struct {
		path, filepath, want string
	}{
		{"/etc/vsmtp/vsmtp.toml", "", ""},
		{"/etc/vsmtp/vsmtp.toml", "/srv/rules/main.vsl", "/srv/rules/main.vsl"},
		{"/etc/vsmtp/vsmtp.toml", "rules/main.vsl", "/etc/vsmtp/rules/main.vsl"},
		{"/etc/vsmtp/vsmtp.toml", "../rules/main.vsl", "/etc/rules/main.vsl"},
		{"conf/vsmtp.toml", "main.vsl", "conf/main.vsl"},
		{"", "main.vsl", "main.vsl"},
	}
	for _, tt := range tests {
		c := Default()
		c.Path, c.App.VSL.Filepath = tt.path, tt.filepath
		if got := c.RulesPath(); got != tt.want {
			t.Errorf("RulesPath() with Path %q, filepath %q = %q, want %q", tt.path, tt.filepath, got, tt.want)
		}
	}
}

func TestMilterOff(t *testing.T) {
	c, err := Parse("vsmtp.toml", []byte("[milter]\nlisten = \"off\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Milter.Listen != "" {
		t.Errorf("listen %q, want \"\" (milter off)", c.Milter.Listen)
	}
}
