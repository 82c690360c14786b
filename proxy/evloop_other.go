//go:build !linux

package proxy

import (
	"errors"
	"net"
)

// eventLoop exists on Linux only (epoll); elsewhere every relay runs on
// goroutines: newEventLoop fails and detach declines every connection.
type eventLoop struct{}

type evRelay struct {
	dirs [2]evDir
	done chan evResult
}

type evResult struct {
	errs     [2]error
	idleStop bool
}

type evDir struct {
	rd       *frameReader
	interest *typeSet
	in       inspector
	out      struct{ spill []byte }
}

func newEventLoop() (*eventLoop, error) { return nil, errors.New("no event loop on this platform") }

func (l *eventLoop) close() {}

func (l *eventLoop) startRelay(fds [2]int, dirs [2]evDir) (*evRelay, error) {
	return nil, errors.New("no event loop on this platform")
}

func (r *evRelay) interrupt(err error) {}

func detach(conns ...net.Conn) ([]int, bool, error) { return nil, false, nil }

func attach(fd int) (net.Conn, error) { return nil, errors.New("no event loop on this platform") }
