package milter

import "time"

// SetKeepalive changes how often a long callback tells the MTA it is
// still working (tests shorten it).
func SetKeepalive(s *Server, every time.Duration) { s.keepalive = every }
