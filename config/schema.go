package config

import (
	"errors"
	"strings"
)

// This file is the schema: which keys each table has and which field each
// one sets. Key names follow vSMTP v1 (vsmtp-config's config.rs).

// document reads the whole file into c.
func (d *decoder) document(c *Config) {
	top, _ := d.table(entry{}, "")
	s := &c.Server
	bind(top, "version_requirement", &c.VersionRequirement, toString)

	// The flat form: vSMTP's guide prints [server], [server.interfaces],
	// [server.tls], [server.smtp.auth] and [app.vsl] without their headers,
	// and server = "warn" for the log level.
	bind(top, "domain", &s.Domain, toString)
	interfaceKeys(top, &s.Interfaces)
	tlsKeys(top, &s.TLS)
	auth := defaultAuth()
	authSet := authKeys(top, auth)
	bind(top, "filepath", &c.App.VSL.Filepath, toString)

	top.known["server"] = true
	if e, ok := top.lookup("server"); ok {
		if _, isTable := e.raw.(map[string]any); isTable {
			top.sub("server", func(t *table) { d.server(t, s, auth, &authSet) })
		} else {
			bind(top, "server", &s.Logs.Level, toServerKey)
		}
	}
	if authSet {
		s.SMTP.Auth = auth
	}

	top.sub("app", func(t *table) {
		bind(t, "dirpath", &c.App.Dirpath, toString)
		t.sub("vsl", func(t *table) { bind(t, "filepath", &c.App.VSL.Filepath, toString) })
		t.sub("logs", func(t *table) {
			l := &c.App.Logs
			bind(t, "filepath", &l.Filepath, toString)
			bind(t, "level", &l.Level, toLevel)
			bind(t, "format", &l.Format, toString)
			bind(t, "size_limit", &l.SizeLimit, toInt64)
			bind(t, "archive_count", &l.ArchiveCount, toInt)
		})
	})

	top.sub("milter", func(t *table) {
		m := &c.Milter
		bind(t, "listen", &m.Listen, toString)
		bind(t, "socket_mode", &m.SocketMode, toSocketMode)
		bind(t, "socket_owner", &m.SocketOwner, toString)
		bind(t, "socket_group", &m.SocketGroup, toString)
		bind(t, "on_error", &m.OnError, oneOf(OnErrorTempfail, OnErrorDeny, OnErrorAccept))
		bind(t, "stage_deadline", &m.StageDeadline, toDuration)
		bind(t, "max_message_size", &m.MaxMessageSize, toInt64)
		bind(t, "shutdown_grace", &m.ShutdownGrace, toDuration)
	})
	top.sub("metrics", func(t *table) {
		bindKeepEmpty(t, "listen", &c.Metrics.Listen, toString) // "" disables
	})
	top.sub("log", func(t *table) {
		bind(t, "level", &c.Log.Level, toOwnLevel)
		bind(t, "json", &c.Log.JSON, toBool)
	})
	top.sub("vsl", func(t *table) {
		bind(t, "max_operations", &c.VSL.MaxOperations, toInt64)
		bind(t, "max_call_depth", &c.VSL.MaxCallDepth, toInt)
	})
	top.sub("delivery", func(t *table) {
		bind(t, "maildir_root", &c.Delivery.MaildirRoot, toString)
		bind(t, "mbox_root", &c.Delivery.MboxRoot, toString)
		bind(t, "forward_timeout", &c.Delivery.ForwardTimeout, toDuration)
	})
	top.sub("resolver", func(t *table) {
		t.sub("mx", func(t *table) {
			for _, name := range t.names() {
				var target string
				if !bind(t, name, &target, toHostPort) {
					continue
				}
				domain := strings.TrimSuffix(strings.ToLower(name), ".")
				e, _ := t.lookup(name)
				if _, dup := c.Resolver.MX[domain]; dup || domain == "" {
					d.errorAt(e, "invalid key: expected a domain name, once (keys are compared in lower case, without a trailing dot)")
					continue
				}
				if c.Resolver.MX == nil {
					c.Resolver.MX = make(map[string]string)
				}
				c.Resolver.MX[domain] = target
			}
		})
	})
	top.checkUnknown()
}

// server reads the [server] table. The auth keys go to auth, and *authSet
// tells whether [server.smtp.auth] was present.
func (d *decoder) server(t *table, s *Server, auth *Auth, authSet *bool) {
	bind(t, "domain", &s.Domain, toString)
	bind(t, "client_count_max", &s.ClientCountMax, toInt)
	bind(t, "message_size_limit", &s.MessageSizeLimit, toInt64)
	t.sub("system", func(t *table) {
		bind(t, "user", &s.System.User, toString)
		bind(t, "group", &s.System.Group, toString)
		bind(t, "group_local", &s.System.GroupLocal, toString)
		t.sub("thread_pool", func(t *table) {
			bind(t, "receiver", &s.System.ThreadPool.Receiver, toInt)
			bind(t, "processing", &s.System.ThreadPool.Processing, toInt)
			bind(t, "delivery", &s.System.ThreadPool.Delivery, toInt)
		})
	})
	t.sub("interfaces", func(t *table) { interfaceKeys(t, &s.Interfaces) })
	t.sub("logs", func(t *table) {
		bind(t, "filepath", &s.Logs.Filepath, toString)
		bind(t, "format", &s.Logs.Format, toString)
		var spec levelSpec
		if bind(t, "level", &spec, toLevelSpec) {
			s.Logs.Level, s.Logs.Levels = spec.def, spec.per
		}
		bind(t, "size_limit", &s.Logs.SizeLimit, toInt64)
		bind(t, "archive_count", &s.Logs.ArchiveCount, toInt)
	})
	t.sub("queues", func(t *table) {
		q := &s.Queues
		bind(t, "dirpath", &q.Dirpath, toString)
		t.sub("working", func(t *table) { bind(t, "channel_size", &q.Working.ChannelSize, toInt) })
		t.sub("delivery", func(t *table) {
			bind(t, "channel_size", &q.Delivery.ChannelSize, toInt)
			bind(t, "deferred_retry_max", &q.Delivery.DeferredRetryMax, toInt)
			bind(t, "deferred_retry_period", &q.Delivery.DeferredRetryPeriod, toDuration)
		})
	})
	t.sub("tls", func(t *table) {
		tlsKeys(t, &s.TLS)
		if !t.has("security_level") {
			d.errorAt(t.self, `missing key security_level: expected "None", "May" or "Encrypt"`)
		}
	})
	t.sub("smtp", func(t *table) {
		m := &s.SMTP
		bind(t, "rcpt_count_max", &m.RcptCountMax, toInt)
		bind(t, "disable_ehlo", &m.DisableEHLO, toBool)
		bind(t, "required_extension", &m.RequiredExtension, toStringList)
		t.sub("error", func(t *table) {
			bind(t, "soft_count", &m.Error.SoftCount, toInt)
			bind(t, "hard_count", &m.Error.HardCount, toInt)
			bind(t, "delay", &m.Error.Delay, toDuration)
		})
		t.sub("timeout_client", func(t *table) {
			tc := &m.TimeoutClient
			bind(t, "connect", &tc.Connect, toDuration)
			bind(t, "helo", &tc.Helo, toDuration)
			bind(t, "mail_from", &tc.MailFrom, toDuration)
			bind(t, "rcpt_to", &tc.RcptTo, toDuration)
			bind(t, "data", &tc.Data, toDuration)
		})
		t.sub("codes", func(t *table) { d.codes(t, m) })
		if t.sub("auth", func(t *table) { authKeys(t, auth) }) {
			*authSet = true
		}
	})
	t.sub("dns", func(t *table) {
		bind(t, "type", &s.DNS.Type, toDNSType)
		t.sub("options", func(t *table) {
			o := &s.DNS.Options
			bind(t, "timeout", &o.Timeout, toDuration)
			bind(t, "attempts", &o.Attempts, toInt)
			bind(t, "rotate", &o.Rotate, toBool)
			bind(t, "dnssec", &o.DNSSEC, toBool)
			bind(t, "ip_strategy", &o.IPStrategy, oneOf("Ipv4Only", "Ipv6Only", "Ipv4AndIpv6", "Ipv6thenIpv4", "Ipv4thenIpv6"))
			bind(t, "cache_size", &o.CacheSize, toInt)
			bind(t, "use_hosts_file", &o.UseHostsFile, toBool)
			bind(t, "num_concurrent_reqs", &o.NumConcurrentReqs, toInt)
		})
	})
}

// codes reads [server.smtp.codes], whose keys are vSMTP's reply names.
func (d *decoder) codes(t *table, m *SMTP) {
	valid := replyNames()
	for _, name := range t.names() {
		if !contains(valid, name) {
			t.known[name] = true // reported here, not as an unknown key
			if e, ok := t.lookup(name); ok {
				d.errorAt(e, "unknown reply name; valid names: %s", strings.Join(valid, ", "))
			}
			continue
		}
		var r Reply
		if bind(t, name, &r, toReply) {
			if m.Codes == nil {
				m.Codes = make(map[string]Reply)
			}
			m.Codes[name] = r
		}
	}
}

// interfaceKeys reads the keys of [server.interfaces].
func interfaceKeys(t *table, in *Interfaces) {
	bind(t, "addr", &in.Addr, toAddrList)
	bind(t, "addr_submission", &in.AddrSubmission, toAddrList)
	bind(t, "addr_submissions", &in.AddrSubmissions, toAddrList)
}

// tlsKeys reads the keys of [server.tls].
func tlsKeys(t *table, tls *TLS) {
	bind(t, "security_level", &tls.SecurityLevel, oneOf(SecurityNone, SecurityMay, SecurityEncrypt))
	bind(t, "preempt_cipherlist", &tls.PreemptCipherlist, toBool)
	bind(t, "handshake_timeout", &tls.HandshakeTimeout, toDuration)
	bind(t, "protocol_version", &tls.ProtocolVersions, toProtocolVersions)
	bind(t, "cipher_suite", &tls.CipherSuites, toCipherSuites)
	bind(t, "certificate", &tls.Certificate, toString)
	bind(t, "private_key", &tls.PrivateKey, toString)
}

// authKeys reads the keys of [server.smtp.auth] and reports whether any was
// set.
func authKeys(t *table, a *Auth) bool {
	set := bind(t, "must_be_authenticated", &a.MustBeAuthenticated, toBool)
	set = bind(t, "enable_dangerous_mechanism_in_clair", &a.EnableDangerousMechanismInClair, toBool) || set
	set = bind(t, "mechanisms", &a.Mechanisms, toMechanisms) || set
	set = bind(t, "attempt_count_max", &a.AttemptCountMax, toInt) || set
	return set
}

// toDNSType reads server.dns.type.
func toDNSType(raw any) (DNSType, error) {
	if s, ok := raw.(string); ok && strings.EqualFold(s, "custom") {
		return "", errors.New(`vSMTP's "custom" resolver is not supported; expected one of "system", "google", "cloudflare"`)
	}
	return oneOf(DNSSystem, DNSGoogle, DNSCloudflare)(raw)
}

// toHostPort reads a "host:port" TCP address.
func toHostPort(raw any) (string, error) {
	s, ok := raw.(string)
	if !ok {
		return "", errors.New(`expected host:port, as in "127.0.0.1:2526"`)
	}
	if reason := checkHostPort(s); reason != "" {
		return "", errors.New(reason)
	}
	return s, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
