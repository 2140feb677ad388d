// Command noop-milter is the baseline of the milter benchmarks: a go-milter
// server that negotiates every callback and answers continue to each, then
// accept at end of message. It is what "a milter that does nothing" costs.
package main

import (
	"flag"
	"log"
	"net"
	"os"

	"github.com/d--j/go-milter"
)

func main() {
	network := flag.String("network", "tcp", "tcp or unix")
	addr := flag.String("addr", "127.0.0.1:10031", "listen address")
	flag.Parse()
	if *network == "unix" {
		os.Remove(*addr)
	}
	ln, err := net.Listen(*network, *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *network == "unix" {
		os.Chmod(*addr, 0o666)
	}
	srv := milter.NewServer(
		milter.WithMilter(func() milter.Milter { return milter.NoOpMilter{} }),
		milter.WithProtocol(0),
		milter.WithAction(0),
	)
	log.Fatal(srv.Serve(ln))
}
