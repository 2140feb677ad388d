package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vsl-milter/vsl-milter/config"
	"github.com/vsl-milter/vsl-milter/delegate"
	"github.com/vsl-milter/vsl-milter/delivery"
	"github.com/vsl-milter/vsl-milter/internal/sockets"
	"github.com/vsl-milter/vsl-milter/logging"
	"github.com/vsl-milter/vsl-milter/metrics"
	"github.com/vsl-milter/vsl-milter/milter"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/smtpd"
	"github.com/vsl-milter/vsl-milter/spool"
)

// cmdServe runs the milter and, when [server.interfaces] lists addresses,
// the standalone SMTP server with its spool: it loads the configuration and
// rules, listens, serves metrics, reloads the rules on SIGHUP and stops
// gracefully on SIGTERM or SIGINT.
func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "the configuration file (vsmtp.toml); default: the embedded default (milter on inet:127.0.0.1:10030, rules that only log)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: vsl-milter serve [-c CONFIG]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	log, err := logging.New("vsl-milter", logging.Options{Level: cfg.Log.Level, JSON: cfg.Log.JSON, Output: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "vsl-milter: %v\n", err)
		return 1
	}
	rules, err := loadRules(cfg)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	for _, w := range rules.Warnings {
		log.Warn("rules", "warning", w.Error())
	}
	m := metrics.New(version)
	m.Preset(ruleKeys(rules))
	m.Loaded()
	var current atomic.Pointer[policy.Rules]
	current.Store(rules)

	agent, err := delivery.New(delivery.Options{
		MaildirRoot: cfg.Delivery.MaildirRoot, MboxRoot: cfg.Delivery.MboxRoot,
		ForwardTimeout: cfg.Delivery.ForwardTimeout, Hostname: cfg.Server.Domain,
	})
	if err != nil {
		fmt.Fprintf(stderr, "vsl-milter: delivery: %v\n", err)
		return 1
	}
	// The receivers of the rules' delegate directives; they outlive the
	// milter's sessions, which may wait on them until Shutdown returns.
	ifs := cfg.Server.Interfaces
	standalone := len(ifs.Addr)+len(ifs.AddrSubmission)+len(ifs.AddrSubmissions) > 0
	// The returns no milter session waits for go to the spool's delegated
	// queue (standalone mode), once it is open.
	spoolSink := &spoolReturns{standalone: standalone}
	delegator := delegate.NewManager(delegate.Options{Hostname: cfg.Server.Domain, Logger: log.Named("delegate"), Metrics: m, Sink: spoolSink})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		delegator.Close(ctx)
	}()
	if err := delegator.Start(rules); err != nil {
		fmt.Fprintf(stderr, "vsl-milter: delegation receivers: %v\n", err)
		return 1
	}
	observer := observers{m, logging.Observer{Log: log.Named("rules")}}
	milterOn := cfg.Milter.Listen != ""
	if !milterOn && !standalone {
		fmt.Fprintln(stderr, `vsl-milter: nothing to serve: [milter] listen is "off" and [server.interfaces] lists no address`)
		return 1
	}

	var srv *milter.Server
	var ln net.Listener
	if milterOn {
		srv = milter.NewServer(milter.Options{
			Rules:          current.Load,
			OnError:        onError(cfg),
			Deadline:       cfg.Milter.StageDeadline,
			MaxMessageSize: cfg.Milter.MaxMessageSize,
			ServerName:     cfg.Server.Domain,
			Deliverer:      agent,
			Observer:       observer,
			Metrics:        m,
			Logger:         log,
			AppDir:         cfg.App.Dirpath,
			Delegator:      delegator,
		})
		network, address, err := config.ParseListen(cfg.Milter.Listen)
		if err != nil {
			fmt.Fprintf(stderr, "vsl-milter: milter.listen: %v\n", err)
			return 1
		}
		ln, err = sockets.Listen(network, address, sockets.UnixOptions{
			Mode: cfg.Milter.SocketMode, Owner: cfg.Milter.SocketOwner, Group: cfg.Milter.SocketGroup,
		})
		if err != nil {
			fmt.Fprintf(stderr, "vsl-milter: %v\n", err)
			return 1
		}
	}

	// Standalone mode: the SMTP server, and the spool it hands accepted
	// messages to, whose workers run postq and delivery and deliver.
	var smtpSrv *smtpd.Server
	var sp *spool.Spool
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	served := make(chan error, 3)
	if standalone {
		sessOpts := policy.SessionOptions{
			OnError: onError(cfg), Deadline: cfg.Milter.StageDeadline,
			RunOptions: policy.RunOptions{Observer: observer, Log: logging.ScriptLog(log.Named("script")), AppDir: cfg.App.Dirpath},
		}
		sp, err = spool.Open(spool.Options{
			Dir: cfg.Server.Queues.Dirpath, AppDir: cfg.App.Dirpath, Rules: current.Load, SessionOpts: sessOpts,
			Agent: agent, Resolver: spool.StaticMX(cfg.Resolver.MX, nil), Hostname: cfg.Server.Domain,
			RetryPeriod: cfg.Server.Queues.Delivery.DeferredRetryPeriod, RetryMax: cfg.Server.Queues.Delivery.DeferredRetryMax,
			Logger: log.Named("spool"), Metrics: m, Delegator: delegator,
		})
		if err != nil {
			fmt.Fprintf(stderr, "vsl-milter: spool: %v\n", err)
			return 1
		}
		defer sp.Close()
		spoolSink.sp.Store(sp)
		smtpSrv, err = smtpd.New(smtpd.Options{
			Config: cfg, Rules: current.Load, Queue: sp, Observer: observer, Logger: log.Named("smtp"), Metrics: m.SMTP(),
			OnError: onError(cfg), Deadline: cfg.Milter.StageDeadline,
		})
		if err != nil {
			fmt.Fprintf(stderr, "vsl-milter: smtp server: %v\n", err)
			return 1
		}
		go sp.Run(workCtx)
		go func() { served <- smtpSrv.Serve(workCtx) }()
	}
	var ready atomic.Bool
	var httpSrv *http.Server
	if cfg.Metrics.Listen != "" {
		mln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			if ln != nil {
				ln.Close()
			}
			fmt.Fprintf(stderr, "vsl-milter: metrics.listen: %v\n", err)
			return 1
		}
		httpSrv = &http.Server{
			Handler: m.Handler(func() error {
				if !ready.Load() {
					return errors.New("not serving yet")
				}
				return nil
			}),
			ReadHeaderTimeout: 10 * time.Second,
		}
		go httpSrv.Serve(mln)
		log.Info("metrics", "listen", mln.Addr().String())
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	if milterOn {
		go func() { served <- srv.Serve(ln) }()
	}
	ready.Store(true)
	log.Info("serving", "milter", cfg.Milter.Listen, "smtp", standalone, "rules", rulesName(cfg), "directives", len(rules.Names()), "version", version)

	for {
		select {
		case err := <-served:
			if err != nil {
				log.Error("server stopped", "error", err)
				return 1
			}
			return 0
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload(*cfgPath, &current, m, log, delegator)
				continue
			}
			log.Info("shutting down", "signal", sig.String(), "grace", cfg.Milter.ShutdownGrace.String())
			ready.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Milter.ShutdownGrace)
			var errs []error
			if srv != nil {
				errs = append(errs, srv.Shutdown(ctx))
			}
			if smtpSrv != nil {
				errs = append(errs, smtpSrv.Shutdown(ctx))
			}
			cancel()
			stopWork() // spool workers stop; unfinished work stays on disk
			err := errors.Join(errs...)
			if httpSrv != nil {
				httpSrv.Close()
			}
			if err != nil {
				log.Warn("sessions cut off at the end of the grace period", "error", err)
			}
			return 0
		}
	}
}

// spoolReturns hands returned delegated messages to the spool (a
// delegate.Sink behind the milter's waiters).
type spoolReturns struct {
	standalone bool // a spool is coming: until it is open, returns are deferred
	sp         atomic.Pointer[spool.Spool]
}

func (r *spoolReturns) Return(ctx context.Context, m delegate.Returned) error {
	if sp := r.sp.Load(); sp != nil {
		return sp.Return(ctx, m)
	}
	if r.standalone {
		return errors.New("the spool is not open yet")
	}
	return fmt.Errorf("delegation %q: %w", m.ID, delegate.ErrUnknownID)
}

// reload recompiles the configuration's rules; on any error the old rules
// keep serving. Sessions in flight finish on the rules they started with.
func reload(cfgPath string, current *atomic.Pointer[policy.Rules], m *metrics.Metrics, log hclog.Logger, delegator *delegate.Manager) {
	cfg, err := loadConfig(cfgPath)
	if err == nil {
		var rules *policy.Rules
		if rules, err = loadRules(cfg); err == nil {
			if derr := delegator.Start(rules); derr != nil {
				// Their delegations fail (on_error) until the address is free.
				log.Error("delegation receivers", "error", derr.Error())
			}
			current.Store(rules)
			m.Preset(ruleKeys(rules))
			m.Reload(nil)
			log.Info("rules reloaded", "rules", rulesName(cfg), "directives", len(rules.Names()))
			return
		}
	}
	m.Reload(err)
	log.Error("reload failed: the previous rules keep serving", "error", err.Error())
}

func rulesName(cfg *config.Config) string {
	if p := cfg.RulesPath(); p != "" {
		return p
	}
	return policy.DefaultRulesPath
}

// ruleKeys lists every directive of the rules for the metrics' series.
func ruleKeys(r *policy.Rules) []metrics.RuleKey {
	var keys []metrics.RuleKey
	for _, st := range policy.Stages() {
		for _, d := range r.Directives(st) {
			keys = append(keys, metrics.RuleKey{Stage: st.String(), Rule: d.Name})
		}
	}
	return keys
}

// observers sends each observation to several observers.
type observers []policy.Observer

func (os observers) Directive(st policy.Stage, d *policy.Directive, k policy.StatusKind, err error, el time.Duration) {
	for _, o := range os {
		o.Directive(st, d, k, err, el)
	}
}

func (os observers) Stage(st policy.Stage, v policy.Verdict, el time.Duration) {
	for _, o := range os {
		o.Stage(st, v, el)
	}
}
