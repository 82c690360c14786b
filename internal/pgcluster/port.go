package pgcluster

import (
	"fmt"
	"net"
)

// freePort asks the kernel for an unused TCP port on 127.0.0.1. The port is
// free only until someone else takes it, which is why Start retries on
// "address already in use".
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
