// Package config describes and validates the settings of vsl-milter.
//
// They are read from vsmtp.toml, the configuration file of vSMTP v1, in either
// of its two forms: the sectioned one ([server], [server.tls], [app.vsl], ...)
// and the flat one printed in vSMTP's "basic configuration" guide (domain,
// addr, security_level, server = "warn", filepath = ... at the top level).
// vsl-milter adds sections of its own: [milter], [metrics], [log], [vsl],
// [delivery] and [resolver].
//
// Loading never touches anything but the file itself: certificates, users,
// groups and the rule files are checked by whoever uses them, when they use
// them; every check that needs no I/O happens at load, and all problems of a
// file are reported at once (see Errors).
//
// The package must not know the milter or SMTP protocols, nor the vSL
// language: it only says what was configured.
package config

import (
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// Config is a loaded, validated configuration. Every field has its default
// filled in; the TOML key that sets a field is given in its comment.
type Config struct {
	// Path is the file the configuration came from: an absolute path after
	// Load, the name given to Parse, "" for Default. Relative rule paths are
	// resolved against its directory.
	Path string
	// VersionRequirement is vSMTP's version_requirement (">=1.0.0"), checked
	// for syntax only; "" when the file has none.
	VersionRequirement string

	// Server is vSMTP's [server] section.
	Server Server
	// App is vSMTP's [app] section.
	App App

	// Milter is vsl-milter's [milter] section: the socket Postfix or
	// Sendmail connects to and how verdicts are given.
	Milter Milter
	// Metrics is the [metrics] section: the Prometheus endpoint.
	Metrics Metrics
	// Log is the [log] section: vsl-milter's own log output.
	Log Log
	// VSL is the [vsl] section: limits on every rule run.
	VSL VSL
	// Delivery is the [delivery] section: copies vsl-milter delivers itself.
	Delivery Delivery
	// Resolver is the [resolver] section: DNS overrides.
	Resolver Resolver
}

// Server is vSMTP's [server] section.
type Server struct {
	// Domain is the name the server gives itself (server.domain, flat
	// domain); the machine's hostname when empty or absent.
	Domain string
	// ClientCountMax is the number of clients served at once
	// (server.client_count_max); -1 means no limit. Default 16.
	ClientCountMax int
	// MessageSizeLimit is the largest message accepted, in bytes
	// (server.message_size_limit). Default 10,000,000.
	MessageSizeLimit int64
	// System is [server.system].
	System System
	// Interfaces is [server.interfaces], the standalone SMTP listeners.
	Interfaces Interfaces
	// Logs is [server.logs].
	Logs ServerLogs
	// Queues is [server.queues].
	Queues Queues
	// TLS is [server.tls]; its SecurityLevel is SecurityNone when the file
	// configures no TLS.
	TLS TLS
	// SMTP is [server.smtp].
	SMTP SMTP
	// DNS is [server.dns].
	DNS DNS
}

// System is [server.system]: the identity the server runs as.
type System struct {
	// User is the user to run as (server.system.user); "" keeps the user
	// vsl-milter was started as (vSMTP itself defaulted to "vsmtp").
	User string
	// Group is the group to run as (server.system.group); "" keeps the
	// current group.
	Group string
	// GroupLocal is the group owning local deliveries
	// (server.system.group_local); "" when unset.
	GroupLocal string
	// ThreadPool is [server.system.thread_pool], kept for compatibility.
	ThreadPool ThreadPool
}

// ThreadPool is [server.system.thread_pool]. vSMTP sized its thread pools
// with it; vsl-milter accepts and checks it but schedules goroutines itself.
type ThreadPool struct {
	// Receiver is thread_pool.receiver. Default 6.
	Receiver int
	// Processing is thread_pool.processing. Default 6.
	Processing int
	// Delivery is thread_pool.delivery. Default 6.
	Delivery int
}

// Interfaces is [server.interfaces]: where the standalone SMTP server
// listens. A list that is absent, or holds only empty strings (addr = [""]),
// keeps its loopback default; an explicit empty list (addr = []) means no
// listener of that kind.
type Interfaces struct {
	// Addr is for relay (MTA) SMTP, port 25 (addr). Default 127.0.0.1:25.
	Addr []netip.AddrPort
	// AddrSubmission is for submission, port 587 (addr_submission).
	// Default 127.0.0.1:587.
	AddrSubmission []netip.AddrPort
	// AddrSubmissions is for submission over implicit TLS, port 465
	// (addr_submissions). Default 127.0.0.1:465.
	AddrSubmissions []netip.AddrPort
}

// ServerLogs is [server.logs].
type ServerLogs struct {
	// Filepath is server.logs.filepath. Default /var/log/vsmtp/vsmtp.log.
	Filepath string
	// Format is server.logs.format, a log4rs pattern kept for reference.
	Format string
	// Level is the default log level: trace, debug, info, warn, error or
	// off (server.logs.level as a string, its "default" entry as a table,
	// or the flat form's server = "warn"). Default warn.
	Level string
	// Levels holds per-component levels: the other entries of a
	// server.logs.level table ({ receiver = "info" }) or the "target=level"
	// entries of a level array. Nil when there are none.
	Levels map[string]string
	// SizeLimit is server.logs.size_limit, in bytes. Default 10 MiB.
	SizeLimit int64
	// ArchiveCount is server.logs.archive_count. Default 10.
	ArchiveCount int
}

// Queues is [server.queues].
type Queues struct {
	// Dirpath is the spool directory (server.queues.dirpath). Default
	// /var/spool/vsmtp.
	Dirpath string
	// Working is [server.queues.working].
	Working WorkingQueue
	// Delivery is [server.queues.delivery].
	Delivery DeliveryQueue
}

// WorkingQueue is [server.queues.working].
type WorkingQueue struct {
	// ChannelSize is working.channel_size. Default 32.
	ChannelSize int
}

// DeliveryQueue is [server.queues.delivery].
type DeliveryQueue struct {
	// ChannelSize is delivery.channel_size. Default 32.
	ChannelSize int
	// DeferredRetryMax is how often a deferred message is retried
	// (delivery.deferred_retry_max). Default 100.
	DeferredRetryMax int
	// DeferredRetryPeriod is the time between retries
	// (delivery.deferred_retry_period). Default 5m.
	DeferredRetryPeriod time.Duration
}

// SecurityLevel is server.tls.security_level.
type SecurityLevel string

// The TLS security levels of vSMTP.
const (
	// SecurityNone offers no TLS (STARTTLS answers 454).
	SecurityNone SecurityLevel = "None"
	// SecurityMay offers STARTTLS; clients may stay in clear text.
	SecurityMay SecurityLevel = "May"
	// SecurityEncrypt requires TLS before a mail transaction.
	SecurityEncrypt SecurityLevel = "Encrypt"
)

// TLS is [server.tls] (or the flat form's TLS keys). Certificate and
// PrivateKey are not read at load; they are required when SecurityLevel is
// not SecurityNone.
type TLS struct {
	// SecurityLevel is security_level: "None", "May" or "Encrypt"; required
	// in a [server.tls] table. Default SecurityNone.
	SecurityLevel SecurityLevel
	// PreemptCipherlist makes the server's cipher order win
	// (preempt_cipherlist). Default false.
	PreemptCipherlist bool
	// HandshakeTimeout bounds the TLS handshake (handshake_timeout).
	// Default 1s.
	HandshakeTimeout time.Duration
	// ProtocolVersions lists the allowed versions, "TLSv1.2" and/or
	// "TLSv1.3" (protocol_version: a list, one version, or "^TLSv1.2" /
	// ">=TLSv1.2" for that version and later). Default both.
	ProtocolVersions []string
	// CipherSuites lists the allowed cipher suites by IANA name, as Go's
	// tls.CipherSuiteName prints them (cipher_suite; rustls's TLS13_ names
	// are accepted too). Default: the nine AEAD suites of rustls.
	CipherSuites []string
	// Certificate is the certificate chain (certificate): a file path, as
	// written, or an inline PEM block.
	Certificate string
	// PrivateKey is the private key (private_key): a file path, as written,
	// or an inline PEM block.
	PrivateKey string
}

// SMTP is [server.smtp].
type SMTP struct {
	// RcptCountMax is the number of recipients per message
	// (rcpt_count_max). Default 1000.
	RcptCountMax int
	// DisableEHLO refuses EHLO, and so every extension (disable_ehlo).
	DisableEHLO bool
	// RequiredExtension lists extensions the server must offer
	// (required_extension). Default STARTTLS, SMTPUTF8, 8BITMIME, AUTH.
	RequiredExtension []string
	// Error is [server.smtp.error].
	Error SMTPError
	// TimeoutClient is [server.smtp.timeout_client].
	TimeoutClient ClientTimeouts
	// Codes overrides replies ([server.smtp.codes]), keyed by vSMTP's reply
	// name ("Greetings", "Denied", ...). Nil when nothing is overridden.
	Codes map[string]Reply
	// Auth is [server.smtp.auth] (or the flat form's auth keys); nil when
	// the file has none, meaning AUTH is not offered.
	Auth *Auth
}

// SMTPError is [server.smtp.error]: how client errors are punished.
type SMTPError struct {
	// SoftCount is the error count after which every reply is delayed
	// (soft_count); -1 disables. Default 10.
	SoftCount int
	// HardCount is the error count after which the client is disconnected
	// (hard_count); -1 disables. Default 20.
	HardCount int
	// Delay is the delay after SoftCount errors (delay). Default 5s.
	Delay time.Duration
}

// ClientTimeouts is [server.smtp.timeout_client]: how long the server waits
// for the client's next command. Each defaults to 5m.
type ClientTimeouts struct {
	// Connect is from the connection to HELO/EHLO (connect).
	Connect time.Duration
	// Helo is from HELO/EHLO to MAIL FROM (helo).
	Helo time.Duration
	// MailFrom is from MAIL FROM to RCPT TO (mail_from).
	MailFrom time.Duration
	// RcptTo is from RCPT TO to DATA (rcpt_to).
	RcptTo time.Duration
	// Data is between lines of message data (data).
	Data time.Duration
}

// Reply is an SMTP reply override from [server.smtp.codes], written either
// as a string ("554 5.7.1 go away") or as a table { code, enhanced, text }.
type Reply struct {
	// Code is the three-digit reply code, 200 to 599.
	Code int
	// Enhanced is the RFC 3463 enhanced status code ("5.7.1"), or "".
	Enhanced string
	// Text is the reply text; a trailing CRLF, as vSMTP wrote it, is removed.
	// It may contain vSMTP's "{domain}" placeholder.
	Text string
}

// Auth is [server.smtp.auth]: SMTP AUTH for the standalone server.
type Auth struct {
	// MustBeAuthenticated refuses MAIL FROM until the client has
	// authenticated (must_be_authenticated). Default false.
	MustBeAuthenticated bool
	// EnableDangerousMechanismInClair allows PLAIN and LOGIN without TLS
	// (enable_dangerous_mechanism_in_clair). Default false.
	EnableDangerousMechanismInClair bool
	// Mechanisms lists the SASL mechanisms offered, upper case (mechanisms):
	// PLAIN, LOGIN, CRAM-MD5, ANONYMOUS. Default PLAIN, LOGIN, CRAM-MD5.
	Mechanisms []string
	// AttemptCountMax is the number of failed attempts allowed
	// (attempt_count_max); -1 means no limit. Default -1.
	AttemptCountMax int
}

// DNSType is server.dns.type: which resolver answers.
type DNSType string

// The resolvers of vSMTP that vsl-milter supports.
const (
	// DNSSystem uses /etc/resolv.conf.
	DNSSystem DNSType = "system"
	// DNSGoogle uses Google's public resolvers.
	DNSGoogle DNSType = "google"
	// DNSCloudflare uses Cloudflare's public resolvers.
	DNSCloudflare DNSType = "cloudflare"
)

// DNS is [server.dns].
type DNS struct {
	// Type is dns.type. Default DNSSystem.
	Type DNSType
	// Options is [server.dns.options].
	Options DNSOptions
}

// DNSOptions is [server.dns.options], vSMTP's resolver options.
type DNSOptions struct {
	// Timeout bounds one query (timeout). Default 5s.
	Timeout time.Duration
	// Attempts is the number of retries after a failure (attempts).
	// Default 2.
	Attempts int
	// Rotate spreads queries over the name servers (rotate).
	Rotate bool
	// DNSSEC validates answers (dnssec).
	DNSSEC bool
	// IPStrategy is ip_strategy: Ipv4Only, Ipv6Only, Ipv4AndIpv6,
	// Ipv6thenIpv4 or Ipv4thenIpv6 (the default).
	IPStrategy string
	// CacheSize is the number of cached records (cache_size). Default 32.
	CacheSize int
	// UseHostsFile consults /etc/hosts first (use_hosts_file). Default true.
	UseHostsFile bool
	// NumConcurrentReqs is the number of name servers asked at once
	// (num_concurrent_reqs). Default 2.
	NumConcurrentReqs int
}

// App is vSMTP's [app] section.
type App struct {
	// Dirpath is where applications store artifacts (app.dirpath), such as
	// quarantined messages. Default /var/spool/vsmtp/app.
	Dirpath string
	// VSL is [app.vsl].
	VSL AppVSL
	// Logs is [app.logs].
	Logs AppLogs
}

// AppVSL is [app.vsl].
type AppVSL struct {
	// Filepath is the vSL entry point as written (app.vsl.filepath, or the
	// flat form's filepath); "" means the embedded default rule set. Use
	// Config.RulesPath for the path to open.
	Filepath string
}

// AppLogs is [app.logs]: the log that rules write with log().
type AppLogs struct {
	// Filepath is app.logs.filepath. Default /var/log/vsmtp/app.log.
	Filepath string
	// Level is app.logs.level: trace, debug, info, warn, error or off.
	// Default warn.
	Level string
	// Format is app.logs.format, a log4rs pattern kept for reference.
	Format string
	// SizeLimit is app.logs.size_limit, in bytes. Default 10 MiB.
	SizeLimit int64
	// ArchiveCount is app.logs.archive_count. Default 10.
	ArchiveCount int
}

// OnError is milter.on_error: the answer when a rule cannot give one.
type OnError string

// The answers to a script error (runtime error, exhausted operation budget,
// passed stage deadline).
const (
	// OnErrorTempfail answers 4xx: the client retries later.
	OnErrorTempfail OnError = "tempfail"
	// OnErrorDeny answers 554, as vSMTP does.
	OnErrorDeny OnError = "deny"
	// OnErrorAccept lets the message through.
	OnErrorAccept OnError = "accept"
)

// MaxStageDeadline bounds milter.stage_deadline: Postfix's default
// milter_command_timeout, after which it stops waiting for the milter.
const MaxStageDeadline = 30 * time.Second

// Milter is the [milter] section.
type Milter struct {
	// Listen is where Postfix or Sendmail connects (listen), in their
	// spelling; see ParseListen. Default "inet:127.0.0.1:10030"; "" when
	// the milter is off (written listen = "off": standalone mode only).
	Listen string
	// SocketMode is the permission of a unix socket (socket_mode, an octal
	// string such as "0660"). Default 0660.
	SocketMode fs.FileMode
	// SocketOwner is the user owning a unix socket (socket_owner); "" leaves
	// it to the process.
	SocketOwner string
	// SocketGroup is the group owning a unix socket (socket_group); "" leaves
	// it to the process.
	SocketGroup string
	// OnError is the answer when a rule fails (on_error). Default
	// OnErrorTempfail.
	OnError OnError
	// StageDeadline bounds the rules of one stage (stage_deadline); more
	// than 0 and less than MaxStageDeadline. Default 10s.
	StageDeadline time.Duration
	// MaxMessageSize is how many bytes of a message the rules may read
	// (max_message_size). Default 10 MiB.
	MaxMessageSize int64
	// ShutdownGrace is how long open sessions may finish on shutdown
	// (shutdown_grace). Default 30s.
	ShutdownGrace time.Duration
}

// Metrics is the [metrics] section.
type Metrics struct {
	// Listen is the host:port of the Prometheus endpoint (listen); "" when
	// disabled (written listen = "" or "off"). Default "127.0.0.1:9464".
	Listen string
}

// Log is the [log] section: vsl-milter's own log output.
type Log struct {
	// Level is trace, debug, info, warn or error (level). Default: the
	// server.logs level when the file sets one ("off" becomes error),
	// else info.
	Level string
	// JSON writes one JSON object per line instead of text (json).
	JSON bool
}

// VSL is the [vsl] section: the limits of one rule run.
type VSL struct {
	// MaxOperations is the operation budget of a run (max_operations).
	// Default 1,000,000.
	MaxOperations int64
	// MaxCallDepth is the deepest function nesting (max_call_depth).
	// Default 64.
	MaxCallDepth int
}

// Delivery is the [delivery] section: the copies vsl-milter delivers
// itself when a rule asks for maildir(), mbox() or forward().
type Delivery struct {
	// MaildirRoot is the absolute directory under which maildirs are
	// written (maildir_root); "" when maildir delivery is not configured.
	MaildirRoot string
	// MboxRoot is the absolute directory under which mbox files are written
	// (mbox_root); "" when mbox delivery is not configured.
	MboxRoot string
	// ForwardTimeout bounds one forward() SMTP session (forward_timeout).
	// Default 1m.
	ForwardTimeout time.Duration
}

// Resolver is the [resolver] section.
type Resolver struct {
	// MX overrides MX lookups, mostly for tests: lower-case domain (without
	// trailing dot) to "host:port" ([resolver.mx] or mx = { ... }). Nil when
	// there are none.
	MX map[string]string
}

// Load reads, parses and validates the configuration file at path. A
// syntax error, unknown keys and invalid values are all reported in one
// Errors value; reading the file is the only I/O.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load configuration: %w", err)
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("load configuration %s: %w", path, err)
	}
	c.Path = abs
	return c, nil
}

// Parse parses and validates a configuration; name is used in error
// messages and becomes Config.Path. Errors are of type Errors.
func Parse(name string, data []byte) (*Config, error) {
	file := name
	if file == "" {
		file = "<config>"
	}
	c := defaults()
	c.Path = name
	d, err := newDecoder(file, data)
	if err != nil {
		return nil, err
	}
	d.document(c)
	normalize(c)
	d.validate(c)
	if len(d.errs) > 0 {
		sortErrors(d.errs)
		return nil, d.errs
	}
	return c, nil
}

// Default returns the configuration used when there is no file: the milter
// on inet:127.0.0.1:10030, metrics on 127.0.0.1:9464, and no rules path,
// meaning the caller's embedded default rule set.
func Default() *Config {
	c := defaults()
	normalize(c)
	return c
}

// RulesPath returns the vSL entry point to open: app.vsl.filepath (or the
// flat form's filepath) as is when absolute, else joined to the directory of
// Path. It returns "" when none is configured: the caller then uses its
// embedded default rule set.
func (c *Config) RulesPath() string {
	p := c.App.VSL.Filepath
	if p == "" || filepath.IsAbs(p) || c.Path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.Path), p)
}
