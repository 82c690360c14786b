package proxy

import (
	"context"
	"time"
)

// shutdownMessage is what clients are told when pgrotate stops, in
// PostgreSQL's words for the same event.
const shutdownMessage = "terminating connection due to administrator command"

// Shutdown stops accepting clients and lets the connected ones finish what
// they are doing: each client is disconnected with 57P01 at its next idle
// moment (between transactions). When ctx ends first, the rest are closed
// at once. It reports whether it had to force that. Close must still be
// called afterwards.
func (s *Server) Shutdown(ctx context.Context) (forced bool) {
	s.mu.Lock()
	s.draining.Store(true)
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	s.mu.Unlock()
	s.log.Info("shutting down: no new clients; disconnecting the others between transactions")
	s.cancels.each(func(sess *session) { sess.kick() })

	idle := make(chan struct{})
	go func() { s.wg.Wait(); close(idle) }()
	select {
	case <-idle:
		return false
	case <-ctx.Done():
		s.log.Warn("shutdown timeout: closing the clients still in a transaction", "clients", s.clientCount.Load())
		s.closeClients()
		<-idle
		return true
	}
}

// isDraining reports whether Shutdown has begun.
func (s *Server) isDraining() bool { return s.draining.Load() }

// closeClients closes every client connection.
func (s *Server) closeClients() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.conns {
		sess.closeConn()
	}
}

// shutdownError is the 57P01 a client gets when pgrotate stops.
func shutdownError() *WireError {
	return fatal(codeAdminShutdown, shutdownMessage)
}

// shutdownRetry is how soon a session that was busy when Shutdown began is
// looked at again.
const shutdownRetry = 100 * time.Millisecond
