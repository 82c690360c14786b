//go:build !linux

package proxy

import (
	"context"
	"errors"
	"io"
	"net"
)

// eventLoop exists on Linux only (epoll); elsewhere every relay runs on
// goroutines: newEventLoop fails and detach declines every connection.
type eventLoop struct{ ringErr error }

type sendQueue struct{}

type evRelay struct {
	dirs [2]evDir
	done chan evResult
}

func newEventLoop(bool) (*eventLoop, error) { return nil, errors.New("no event loop on this platform") }

func (l *eventLoop) close() {}

func (l *eventLoop) startRelay(fds [2]int, dirs [2]evDir, setup func(*evRelay)) (*evRelay, error) {
	return nil, errors.New("no event loop on this platform")
}

func (r *evRelay) interrupt(err error) {}

func detach(conns ...net.Conn) ([]int, bool, error) { return nil, false, nil }

func plainSocket(c net.Conn) bool { return false }

func attach(fd int) (net.Conn, error) { return nil, errors.New("no event loop on this platform") }

func closeFD(fd int) {}

// loopSupported: no event loop here.
const loopSupported = false

func toPollConn(c net.Conn) net.Conn { return c }

func loopFD(c net.Conn) (int, bool) { return -1, false }

func (t *txRelay) lease() error { return errors.New("no event loop on this platform") }

func (t *txRelay) toClient() io.Writer { return nil }

func (s *session) detachForLoop(p *pool) bool { return false }

func (s *session) startSessionRound(ctx context.Context, h *held, sr *sessionRelay, here bool) (bool, error) {
	return false, nil
}

func (s *session) txOnLoop(c *txClient, ended *roundEnded) (error, bool) { return nil, true }

func (l *eventLoop) post(cmd func()) bool { return false }

func (p *pool) serveLoopWaiters() {}

func (p *pool) shareRelease(*lease) bool { return false }

// pollConn exists on Linux only; toPollConn never makes one here.
type pollConn struct{ net.Conn }

func (c *pollConn) pending() bool { return false }

func (c *pollConn) peek() peekState { return peekQuiet }

func (c *pollConn) peerHungUp() bool { return false }

func (c *pollConn) handBack() (net.Conn, error) { return c.Conn, nil }

func (p *pool) reclaimLoopIdle() {}

func (s *Server) loginOnLoop(ctx context.Context, sess *session, here bool) bool { return false }

// loopAcceptor exists on Linux only; acceptOnLoop never makes one here.
type loopAcceptor struct{}

func (s *Server) acceptOnLoop(ctx context.Context, ln net.Listener) *loopAcceptor { return nil }

func (s *Server) serveOnLoop(a *loopAcceptor) {}

type acceptingListener struct {
	net.Listener
	a *loopAcceptor
}
