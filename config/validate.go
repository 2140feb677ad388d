package config

import (
	"encoding/pem"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// validate checks ranges and the relations between settings, once defaults
// are in place. Types and spellings were checked while decoding.
func (d *decoder) validate(c *Config) {
	if c.VersionRequirement != "" && !validVersionReq(c.VersionRequirement) {
		d.invalid("version_requirement", `expected a version requirement such as ">=1.0.0" or ">=1.0.0, <2.0.0"`)
	}

	s := &c.Server
	d.check(s.ClientCountMax == -1 || s.ClientCountMax > 0, "server.client_count_max", "expected -1 (no limit) or a positive number")
	d.check(s.MessageSizeLimit > 0, "server.message_size_limit", "expected a positive number of bytes")
	type count struct {
		n   int
		key string
	}
	for _, p := range []count{
		{s.System.ThreadPool.Receiver, "server.system.thread_pool.receiver"},
		{s.System.ThreadPool.Processing, "server.system.thread_pool.processing"},
		{s.System.ThreadPool.Delivery, "server.system.thread_pool.delivery"},
		{s.Queues.Working.ChannelSize, "server.queues.working.channel_size"},
		{s.Queues.Delivery.ChannelSize, "server.queues.delivery.channel_size"},
		{s.SMTP.RcptCountMax, "server.smtp.rcpt_count_max"},
		{c.VSL.MaxCallDepth, "vsl.max_call_depth"},
	} {
		d.check(p.n > 0, p.key, "expected a positive number")
	}
	for _, p := range []count{
		{s.Logs.ArchiveCount, "server.logs.archive_count"},
		{c.App.Logs.ArchiveCount, "app.logs.archive_count"},
		{s.Queues.Delivery.DeferredRetryMax, "server.queues.delivery.deferred_retry_max"},
		{s.DNS.Options.Attempts, "server.dns.options.attempts"},
		{s.DNS.Options.CacheSize, "server.dns.options.cache_size"},
		{s.DNS.Options.NumConcurrentReqs, "server.dns.options.num_concurrent_reqs"},
	} {
		d.check(p.n >= 0, p.key, "expected 0 or more")
	}
	d.check(s.Logs.SizeLimit > 0, "server.logs.size_limit", "expected a positive number of bytes")
	d.check(c.App.Logs.SizeLimit > 0, "app.logs.size_limit", "expected a positive number of bytes")
	d.check(s.SMTP.Error.SoftCount >= -1, "server.smtp.error.soft_count", "expected -1 (disabled) or 0 or more")
	d.check(s.SMTP.Error.HardCount >= -1, "server.smtp.error.hard_count", "expected -1 (disabled) or 0 or more")
	d.check(s.SMTP.Error.Delay >= 0, "server.smtp.error.delay", "expected 0s or more")

	for _, p := range []struct {
		ok  bool
		key string
	}{
		{s.Queues.Delivery.DeferredRetryPeriod > 0, "server.queues.delivery.deferred_retry_period"},
		{s.TLS.HandshakeTimeout > 0, "server.tls.handshake_timeout"},
		{s.SMTP.TimeoutClient.Connect > 0, "server.smtp.timeout_client.connect"},
		{s.SMTP.TimeoutClient.Helo > 0, "server.smtp.timeout_client.helo"},
		{s.SMTP.TimeoutClient.MailFrom > 0, "server.smtp.timeout_client.mail_from"},
		{s.SMTP.TimeoutClient.RcptTo > 0, "server.smtp.timeout_client.rcpt_to"},
		{s.SMTP.TimeoutClient.Data > 0, "server.smtp.timeout_client.data"},
		{s.DNS.Options.Timeout > 0, "server.dns.options.timeout"},
		{c.Delivery.ForwardTimeout > 0, "delivery.forward_timeout"},
	} {
		d.check(p.ok, p.key, "expected a duration longer than 0s")
	}

	d.validateTLS(&s.TLS)
	if a := s.SMTP.Auth; a != nil {
		d.check(len(a.Mechanisms) > 0, "server.smtp.auth.mechanisms", "expected at least one mechanism")
		d.check(a.AttemptCountMax >= -1, "server.smtp.auth.attempt_count_max", "expected -1 (no limit) or 0 or more")
	}

	m := &c.Milter
	if m.Listen != "" {
		if _, _, reason := parseListen(m.Listen); reason != "" {
			d.invalid("milter.listen", reason)
		}
	}
	d.check(m.StageDeadline > 0 && m.StageDeadline < MaxStageDeadline, "milter.stage_deadline",
		"expected more than 0s and less than 30s (Postfix's default milter_command_timeout)")
	d.check(m.MaxMessageSize > 0, "milter.max_message_size", "expected a positive number of bytes")
	d.check(m.ShutdownGrace >= 0, "milter.shutdown_grace", "expected 0s or more")

	if c.Metrics.Listen != "" {
		if reason := checkHostPort(c.Metrics.Listen); reason != "" {
			d.invalid("metrics.listen", reason+`, or "off"`)
		}
	}
	d.check(c.VSL.MaxOperations > 0, "vsl.max_operations", "expected a positive number (rules on live mail must be bounded)")
	for _, p := range []struct{ path, key string }{
		{c.Delivery.MaildirRoot, "delivery.maildir_root"},
		{c.Delivery.MboxRoot, "delivery.mbox_root"},
	} {
		d.check(p.path == "" || filepath.IsAbs(p.path), p.key, "expected an absolute path")
	}
}

// validateTLS checks what can be checked without reading files: a
// certificate and key are named when TLS is offered, and inline PEM blocks
// decode.
func (d *decoder) validateTLS(t *TLS) {
	if t.SecurityLevel == SecurityNone {
		return
	}
	why := fmt.Sprintf("required when security_level is %q", t.SecurityLevel)
	for _, p := range []struct{ value, key string }{
		{t.Certificate, "server.tls.certificate"},
		{t.PrivateKey, "server.tls.private_key"},
	} {
		switch {
		case p.value == "":
			d.missing(p.key, why, "server.tls.security_level", "server.tls")
		case strings.HasPrefix(strings.TrimSpace(p.value), "-----BEGIN"):
			if block, _ := pem.Decode([]byte(strings.TrimSpace(p.value))); block == nil {
				d.invalid(p.key, "expected a file path or a well-formed inline PEM block")
			}
		}
	}
}

// check reports key as invalid, saying what is expected, unless ok.
func (d *decoder) check(ok bool, key, expect string) {
	if !ok {
		d.invalid(key, expect)
	}
}

// invalid reports the value of the setting key, placed where it was written.
func (d *decoder) invalid(key, expect string) {
	st, ok := d.set[key]
	if !ok { // a default is never invalid; say so plainly if one ever is
		d.errs = append(d.errs, &Error{File: d.file, Key: key, Msg: "invalid default: " + expect})
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: st.line, Col: st.col, Key: st.key.String(),
		Msg: fmt.Sprintf("invalid value %s: %s", render(st.raw), expect)})
}

// missing reports that key must be set, placed at the first of anchors
// that was written (the setting that requires it).
func (d *decoder) missing(key, why string, anchors ...string) {
	if _, written := d.set[key]; written {
		return // written but invalid, and reported as such
	}
	for _, a := range anchors {
		st, ok := d.set[a]
		if !ok {
			continue
		}
		name := key
		if st.flat {
			name = key[strings.LastIndex(key, ".")+1:]
		}
		d.errs = append(d.errs, &Error{File: d.file, Line: st.line, Col: st.col, Key: name, Msg: "missing: " + why})
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Key: key, Msg: "missing: " + why})
}

// validVersionReq checks the syntax of a Cargo/semver version requirement:
// comma-separated comparators such as ">=1.0.0", "^1.2", "=1.0.0-rc.1", "*".
func validVersionReq(s string) bool {
	comparator := regexp.MustCompile(`^(\*|(=|>=|<=|>|<|~|\^)?\s*v?\d+(\.(\d+|\*|x|X)(\.(\d+|\*|x|X)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)?)?)$`)
	for _, part := range strings.Split(s, ",") {
		if !comparator.MatchString(strings.TrimSpace(part)) {
			return false
		}
	}
	return true
}
