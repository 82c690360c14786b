//go:build !linux

package daemon

import "net"

// listenTCP listens for clients; Go sets TCP keepalive on each accepted
// connection.
func listenTCP(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
