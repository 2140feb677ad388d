package milter_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/vsl-milter/vsl-milter/milter"
	"github.com/vsl-milter/vsl-milter/policy"
)

// The benchmarks run whole milter sessions through go-milter's client, as
// Postfix does without connection reuse (one milter connection per SMTP
// session): connect, helo, mail, three recipients, four header fields, a
// 4 KiB body, end of message. "vsl" is this server with the Doe family
// rules of contrib/examples (a mail rule, a rcpt action, a delivery action
// choosing maildir for the family: local deliveries go to a Deliverer that
// discards them); "noop" is a go-milter server whose milter does nothing,
// with every event negotiated, the usual baseline.
//
//	go test ./milter -run '^$' -bench Session -benchtime 3000x -count 5

// benchMessage is the Doe family's message.
var benchMessage = struct {
	from    string
	rcpts   []string
	headers [][2]string
	body    string
}{
	from:  "grandma@example.org",
	rcpts: []string{"jenny.doe@doe-family.com", "john.doe@doe-family.com", "bob@example.net"},
	headers: [][2]string{
		{"From", "Grandma <grandma@example.org>"},
		{"To", "Jenny <jenny.doe@doe-family.com>, john.doe@doe-family.com, bob@example.net"},
		{"Subject", "Happy birthday"},
		{"Message-ID", "<1234@example.org>"},
	},
	body: strings.Repeat("Lots of love from all of us, see you on Sunday.\r\n", 4096/50),
}

// discard is a Deliverer that delivers nothing.
type discard struct{ n atomic.Int64 }

func (d *discard) Deliver(ctx context.Context, msg []byte, from policy.MailAddr, rcpts []policy.DeliveryChoice) error {
	d.n.Add(int64(len(rcpts)))
	return nil
}

// benchServer starts the named server on network and returns its address.
func benchServer(b *testing.B, network, kind string) string {
	b.Helper()
	var ln net.Listener
	var err error
	if network == "unix" {
		dir, derr := os.MkdirTemp("", "vmb")
		if derr != nil {
			b.Fatal(derr)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		ln, err = net.Listen("unix", filepath.Join(dir, "m.sock"))
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		b.Fatal(err)
	}
	switch kind {
	case "noop":
		s := gomilter.NewServer(
			gomilter.WithMilter(func() gomilter.Milter { return gomilter.NoOpMilter{} }),
			gomilter.WithActions(gomilter.OptAddHeader|gomilter.OptChangeHeader|gomilter.OptAddRcpt|gomilter.OptRemoveRcpt|gomilter.OptQuarantine),
		)
		go s.Serve(ln)
		b.Cleanup(func() { s.Close() })
	default:
		rules, err := policy.LoadFile("../contrib/examples/doe-family/main.vsl", policy.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s := milter.NewServer(milter.Options{
			Rules:      func() *policy.Rules { return rules },
			Deadline:   5 * time.Second,
			ServerName: "doe-family.com",
			Deliverer:  &discard{},
		})
		go s.Serve(ln)
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Shutdown(ctx)
		})
	}
	return ln.Addr().String()
}

// oneSession runs one milter session with the Doe family's message.
func oneSession(c *gomilter.Client) error {
	s, err := c.Session(nil)
	if err != nil {
		return err
	}
	defer s.Close()
	check := func(act *gomilter.Action, err error) error {
		if err != nil {
			return err
		}
		if act.Type != gomilter.ActionContinue {
			return &unexpected{act}
		}
		return nil
	}
	if err := check(s.Conn("mail.example.org", gomilter.FamilyInet, 52000, "198.51.100.20")); err != nil {
		return err
	}
	if err := check(s.Helo("mail.example.org")); err != nil {
		return err
	}
	if err := check(s.Mail(benchMessage.from, "")); err != nil {
		return err
	}
	for _, r := range benchMessage.rcpts {
		if err := check(s.Rcpt(r, "")); err != nil {
			return err
		}
	}
	if err := check(s.DataStart()); err != nil {
		return err
	}
	for _, h := range benchMessage.headers {
		if err := check(s.HeaderField(h[0], h[1], nil)); err != nil {
			return err
		}
	}
	if err := check(s.HeaderEnd()); err != nil {
		return err
	}
	_, act, err := s.BodyReadFrom(strings.NewReader(benchMessage.body))
	if err != nil {
		return err
	}
	if act.Type != gomilter.ActionAccept {
		return &unexpected{act}
	}
	return nil
}

type unexpected struct{ act *gomilter.Action }

func (u *unexpected) Error() string { return "unexpected answer " + u.act.String() }

// BenchmarkSession measures one session after the other, for each server
// and network, and in "ratio" both servers alternately, reporting the
// throughput of this server relative to the no-op one (1.0: as fast).
func BenchmarkSession(b *testing.B) {
	for _, network := range []string{"unix", "tcp"} {
		for _, kind := range []string{"noop", "vsl"} {
			b.Run(network+"/"+kind, func(b *testing.B) {
				c := gomilter.NewClient(network, benchServer(b, network, kind))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := oneSession(c); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(network+"/ratio", func(b *testing.B) {
			noop := gomilter.NewClient(network, benchServer(b, network, "noop"))
			vsl := gomilter.NewClient(network, benchServer(b, network, "vsl"))
			var tNoop, tVSL time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := oneSession(noop); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := oneSession(vsl); err != nil {
					b.Fatal(err)
				}
				tNoop += mid.Sub(start)
				tVSL += time.Since(mid)
			}
			b.ReportMetric(float64(tNoop.Microseconds())/float64(b.N), "noop-µs/msg")
			b.ReportMetric(float64(tVSL.Microseconds())/float64(b.N), "vsl-µs/msg")
			b.ReportMetric(float64(tNoop)/float64(tVSL), "vsl/noop-throughput")
		})
	}
}

// BenchmarkSessionConcurrent runs b.N sessions over 20 connections at once
// (one message per connection, as Postfix's smtpd processes do) and
// reports the throughput, the median and 99th percentile of a session's
// latency, and the process's CPU time per session (client and server: on
// a shared machine, steadier than the throughput). Its percentiles settle
// with tens of thousands of sessions:
//
//	go test ./milter -run '^$' -bench SessionConcurrent -benchtime 20000x -count 5
func BenchmarkSessionConcurrent(b *testing.B) {
	const conns = 20
	for _, network := range []string{"unix", "tcp"} {
		for _, kind := range []string{"noop", "vsl"} {
			b.Run(network+"/"+kind, func(b *testing.B) {
				c := gomilter.NewClient(network, benchServer(b, network, kind))
				lat := make([]time.Duration, b.N)
				var next atomic.Int64
				var wg sync.WaitGroup
				var failed atomic.Value
				b.ResetTimer()
				start, cpu0 := time.Now(), processCPU()
				for w := 0; w < conns; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := next.Add(1) - 1
							if i >= int64(b.N) {
								return
							}
							t0 := time.Now()
							if err := oneSession(c); err != nil {
								failed.Store(err)
								return
							}
							lat[i] = time.Since(t0)
						}
					}()
				}
				wg.Wait()
				elapsed, cpu := time.Since(start), processCPU()-cpu0
				b.StopTimer()
				if err, _ := failed.Load().(error); err != nil {
					b.Fatal(err)
				}
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
				b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				if cpu > 0 {
					// Client and server: the client's share is the same for
					// both servers.
					b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
				}
			})
		}
	}
}
