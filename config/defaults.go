package config

import (
	"os"
	"strings"
	"time"
)

// This file is the one place that decides what an unset value becomes:
// defaults gives the static defaults, isEmpty says which written values count
// as "not set" (the decoder skips those, keeping the default), and normalize
// fills in the defaults that depend on the machine or on other settings.

// defaults returns a configuration holding every static default. The values
// of vSMTP's sections are vSMTP v1's own defaults (vsmtp-config's
// default.rs), except that listeners are on loopback only.
func defaults() *Config {
	return &Config{
		Server: Server{
			ClientCountMax:   16,
			MessageSizeLimit: 10_000_000,
			System:           System{ThreadPool: ThreadPool{Receiver: 6, Processing: 6, Delivery: 6}},
			// No SMTP listener unless the file names one: vsl-milter's main
			// job is the milter, and standalone mode is opt-in (vSMTP's
			// default of 127.0.0.1:25/587/465 would take the ports of a
			// Postfix on the same host).
			Interfaces: Interfaces{},
			Logs: ServerLogs{
				Filepath:     "/var/log/vsmtp/vsmtp.log",
				Format:       "{d(%Y-%m-%d %H:%M:%S%.f)} {h({l:<5})} {t:<30} $ {m}{n}",
				SizeLimit:    10 << 20,
				ArchiveCount: 10,
			},
			Queues: Queues{
				Dirpath: "/var/spool/vsmtp",
				Working: WorkingQueue{ChannelSize: 32},
				Delivery: DeliveryQueue{
					ChannelSize:         32,
					DeferredRetryMax:    100,
					DeferredRetryPeriod: 5 * time.Minute,
				},
			},
			TLS: TLS{
				SecurityLevel:    SecurityNone,
				HandshakeTimeout: time.Second,
				ProtocolVersions: []string{"TLSv1.2", "TLSv1.3"},
				CipherSuites:     defaultCipherSuites(),
			},
			SMTP: SMTP{
				RcptCountMax:      1000,
				RequiredExtension: []string{"STARTTLS", "SMTPUTF8", "8BITMIME", "AUTH"},
				Error:             SMTPError{SoftCount: 10, HardCount: 20, Delay: 5 * time.Second},
				TimeoutClient: ClientTimeouts{
					Connect:  5 * time.Minute,
					Helo:     5 * time.Minute,
					MailFrom: 5 * time.Minute,
					RcptTo:   5 * time.Minute,
					Data:     5 * time.Minute,
				},
			},
			DNS: DNS{
				Type: DNSSystem,
				Options: DNSOptions{
					Timeout:           5 * time.Second,
					Attempts:          2,
					IPStrategy:        "Ipv4thenIpv6",
					CacheSize:         32,
					UseHostsFile:      true,
					NumConcurrentReqs: 2,
				},
			},
		},
		App: App{
			Dirpath: "/var/spool/vsmtp/app",
			Logs: AppLogs{
				Filepath:     "/var/log/vsmtp/app.log",
				Level:        "warn",
				Format:       "{d} - {m}{n}",
				SizeLimit:    10 << 20,
				ArchiveCount: 10,
			},
		},
		Milter: Milter{
			Listen:         "inet:127.0.0.1:10030",
			SocketMode:     0o660,
			OnError:        OnErrorTempfail,
			StageDeadline:  10 * time.Second,
			MaxMessageSize: 10 << 20,
			ShutdownGrace:  30 * time.Second,
		},
		Metrics:  Metrics{Listen: "127.0.0.1:9464"},
		VSL:      VSL{MaxOperations: 1_000_000, MaxCallDepth: 64},
		Delivery: Delivery{ForwardTimeout: time.Minute},
	}
}

// defaultAuth is [server.smtp.auth] when the file has the section but not
// every key.
func defaultAuth() *Auth {
	return &Auth{Mechanisms: []string{"PLAIN", "LOGIN", "CRAM-MD5"}, AttemptCountMax: -1}
}

// isEmpty reports whether a written value means "not set": an empty string,
// or a non-empty list of empty strings (vSMTP's guide writes addr = [""]).
// An empty list is a value: addr = [] means no listener.
func isEmpty(raw any) bool {
	switch v := raw.(type) {
	case string:
		return v == ""
	case []any:
		if len(v) == 0 {
			return false
		}
		for _, x := range v {
			if s, ok := x.(string); !ok || s != "" {
				return false
			}
		}
		return true
	}
	return false
}

// normalize fills in the defaults that are not constants: the hostname, the
// log levels, and the spelled-out "off" of the metrics and milter listeners.
func normalize(c *Config) {
	if c.Server.Domain == "" {
		c.Server.Domain = hostname()
	}
	if c.Log.Level == "" {
		switch c.Server.Logs.Level {
		case "":
			c.Log.Level = "info"
		case "off":
			c.Log.Level = "error"
		default:
			c.Log.Level = c.Server.Logs.Level
		}
	}
	if c.Server.Logs.Level == "" {
		c.Server.Logs.Level = "warn"
	}
	if strings.EqualFold(c.Metrics.Listen, "off") {
		c.Metrics.Listen = ""
	}
	if strings.EqualFold(c.Milter.Listen, "off") {
		c.Milter.Listen = ""
	}
}

// hostname is the machine's name, or "localhost" when it has none.
func hostname() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}
