package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgrotate/pgrotate/configs"
	"github.com/pgrotate/pgrotate/rotation"
)

// Options are what a Server is built from. Everything is validated before.
type Options struct {
	Config *configs.Config
	// Credentials of each configured database, by database name.
	Credentials map[string]Credentials
	// OnUpstreamAuthFailure, if set, is called with a database's name when
	// PostgreSQL refuses its current credential: re-read the source now.
	OnUpstreamAuthFailure func(db string)
	Logger                *slog.Logger
	// TLS is the client-side TLS (see NewClientTLS); nil: SSLRequest is
	// answered 'N'.
	TLS *ClientTLS
	// Metrics, if set, are updated as clients come and go (NewMetrics).
	Metrics *Metrics
	// ClientSecretsFromFiles are client verifiers read from password_file,
	// by user.
	ClientSecretsFromFiles map[string][]string
}

// Server is the proxy: it accepts clients and serves them from per-database
// pools of server connections.
type Server struct {
	cfg     *configs.Config
	log     *slog.Logger
	pools   map[string]*pool
	clients atomic.Pointer[clientDirectory]
	cancels *cancelRegistry
	metrics *Metrics // nil: none
	tls     *ClientTLS

	clientCount atomic.Int64
	wg          sync.WaitGroup // one per session goroutine

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*session]struct{}
	closed    bool

	replacers replacers // one per pool after a rotation

	// loopLogins: pools are relayed on the event loop, and plaintext
	// clients are accepted and log in there too (see loopLogin).
	loopLogins bool

	loginFails loginFailures // bounds the log lines of failed logins

	loopOnce sync.Once
	loop     *eventLoop  // nil until a relay needs it, or when unavailable
	draining atomic.Bool // Shutdown began: clients leave at their next idle moment
}

// New builds a Server; it opens no connection yet.
func New(opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg:     opts.Config,
		log:     slog.New(&lazyAttrs{h: log.Handler()}),
		pools:   make(map[string]*pool),
		cancels: newCancelRegistry(),
		metrics: opts.Metrics,
		tls:     opts.TLS,
		conns:   make(map[*session]struct{}),
	}
	s.loginFails.after = time.AfterFunc
	s.loginFails.windowEnd = func(code string, skipped int) {
		s.log.Warn("client logins failed and were not logged", "sqlstate", code, "failures", skipped, "window", loginFailWindow)
	}
	if err := s.SetClients(opts.Config.Clients, opts.ClientSecretsFromFiles); err != nil {
		return nil, err
	}
	for name, db := range opts.Config.Databases {
		creds, ok := opts.Credentials[name]
		if !ok {
			return nil, fmt.Errorf("database %q: no credential source", name)
		}
		up, err := NewUpstream(opts.Config.Upstream, db)
		if err != nil {
			return nil, fmt.Errorf("database %q: %w", name, err)
		}
		p, err := newPool(db, up, creds, log, opts.Metrics.forDatabase(name))
		if err != nil {
			return nil, err
		}
		p.onLoop = opts.Config.Limits.EventLoop && loopSupported
		s.loopLogins = s.loopLogins || p.onLoop
		if f := opts.OnUpstreamAuthFailure; f != nil {
			p.onAuthFailure = func() { f(name) }
		}
		p.roleUser = s.roleUser
		s.pools[name] = p
	}
	return s, nil
}

// roleUser names a database of this pgrotate that still uses role: as its
// current credential's role (a password-only rotation keeps the role, and
// several databases may read one credential source) or through a server
// connection of any generation. "" when none does. The pools are fixed
// once New returns.
func (s *Server) roleUser(role string) string {
	for name, p := range s.pools {
		if p.usesRole(role) {
			return name
		}
	}
	return ""
}

// Serve accepts clients on ln until Close or Shutdown, or until ln is
// closed. It returns nil after Close. On Linux the event loop may take a
// TCP listener over (see loopAcceptor): it accepts on a duplicate of ln's
// socket and closes ln at once, and then only Close and Shutdown stop it.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	a := s.acceptOnLoop(ctx, ln)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if a != nil {
			_ = acceptingListener{ln, a}.Close()
		}
		return net.ErrClosed
	}
	if a != nil {
		s.listeners = append(s.listeners, acceptingListener{ln, a})
	} else {
		s.listeners = append(s.listeners, ln)
	}
	s.mu.Unlock()
	if a != nil {
		s.serveOnLoop(a)
		return nil
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() || s.draining.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accepting clients: %w", err)
		}
		s.newSession(ctx, c, false)
	}
}

// newSession starts a client's session: on the event loop if it can log
// in there (loginOnLoop), else on a goroutine of its own. here: the caller
// is the loop goroutine, which accepted c. Its socket already has
// TCP_NODELAY: Go sets it on every TCP connection it accepts, and the
// loop's accepted sockets inherit it from the listening one, so setting
// it again here was one system call per login for nothing.
func (s *Server) newSession(ctx context.Context, c net.Conn, here bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = c.Close()
		return
	}
	n := s.clientCount.Add(1)
	sess := &session{
		srv:       s,
		conn:      c,
		raw:       c,
		clientRd:  newClientReader(c),
		log:       s.log.With("client", c.RemoteAddr().String()),
		overLimit: n > int64(s.cfg.Limits.MaxClientConn),
	}
	s.conns[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()

	if !s.loginOnLoop(ctx, sess, here) {
		go sess.run(ctx)
	}
}

// sessionEnded forgets a session that has ended (session.end).
func (s *Server) sessionEnded(sess *session) {
	s.mu.Lock()
	delete(s.conns, sess)
	s.mu.Unlock()
	s.clientCount.Add(-1)
	s.wg.Done()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops accepting, closes every client connection and every server
// connection, and waits for the sessions to end. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	s.mu.Unlock()
	s.replacers.close()
	s.loginFails.close()
	s.closeClients()
	s.wg.Wait()
	for _, p := range s.pools {
		p.close()
	}
	s.loopOnce.Do(func() {}) // no loop may start from here on
	if s.loop != nil {
		s.loop.close()
	}
	return nil
}

// poolFor finds the pool for a client's requested database, if the client
// may use it. The messages match PostgreSQL's.
func (s *Server) poolFor(p *startupParams) (*pool, error) {
	pl, ok := s.pools[p.database]
	if !ok {
		return nil, fatal(codeInvalidCatalogName, "database %q does not exist", p.database)
	}
	if c, _ := s.clients.Load().lookup(p.user); !c.allows(p.database) {
		return nil, fatal(codeInvalidAuthSpec, "user %q may not connect to database %q through pgrotate", p.user, p.database)
	}
	return pl, nil
}

// cancelTimeout bounds forwarding one cancel request to PostgreSQL.
const cancelTimeout = 5 * time.Second

// forwardCancel sends a client's CancelRequest to the server connection that
// client holds right now, if any. Unknown keys are ignored, as PostgreSQL does.
func (s *Server) forwardCancel(ctx context.Context, cr *pgproto3.CancelRequest) {
	sess, ok := s.cancels.lookup(cr.ProcessID, cr.SecretKey)
	if !ok {
		s.log.Debug("cancel request with unknown key ignored")
		return
	}
	sc := sess.server.Load()
	if sc == nil && sess.waitStart.Load() != 0 {
		// Its statement waits for a server connection: the cancel goes
		// out once it has one, unless it got one meanwhile.
		at := time.Now().UnixNano()
		sess.cancelAt.Store(at)
		if sc = sess.server.Load(); sc == nil || !sess.cancelAt.CompareAndSwap(at, 0) {
			return
		}
	}
	if sc == nil {
		return
	}
	s.cancelOn(ctx, sess, sc)
}

// cancelOn forwards a cancel to sc, the connection sess held when it came.
func (s *Server) cancelOn(ctx context.Context, sess *session, sc *serverConn) {
	sc.cancels.Add(1)
	defer sc.cancels.Add(-1)
	if sess.server.Load() != sc {
		// The client's transaction ended meanwhile: the backend may be
		// running another client's query by now. A release after the
		// recheck sees the count and closes the connection instead.
		return
	}
	if err := sc.cancel(ctx); err != nil {
		s.log.Warn("forwarding cancel request failed", "database", sc.db, "err", err)
	}
}

// Promoted tells the proxy that db's credential moved from prev to next:
// a replacer moves the pool's connections, and its session-mode clients,
// to the new generation one at a time (see replace.go). New connections
// use the new credential at once.
func (s *Server) Promoted(db string, prev, next rotation.Generation) {
	p, ok := s.pools[db]
	if !ok {
		return
	}
	p.conns.noteGeneration(next.N, next.Cred.Username)
	if prev.N == 0 {
		return
	}
	if p.conns.count(prev.N) == 0 {
		p.reportDrained(prev)
	}
	s.replacers.start(p, s.replacement(p, next))
}
