//go:build !linux

package milter

import "net"

// quickAck returns c: TCP_QUICKACK is Linux's.
func quickAck(c net.Conn) net.Conn { return c }
