package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgrotate/pgrotate/auth"
	"github.com/pgrotate/pgrotate/configs"
)

// sessionState is where a client session is in its life.
type sessionState int32

const (
	// stateStartup: reading SSLRequest/StartupMessage.
	stateStartup sessionState = iota
	// stateAuth: proving the client's password.
	stateAuth
	// stateConnecting: waiting for a server connection from the pool.
	stateConnecting
	// stateActive: relaying between the client and its server connection.
	stateActive
	// stateClosing: giving the server connection back and closing.
	stateClosing
)

// session is one client connection. Whoever serves it owns it: its
// goroutine, or the event loop, which logs plaintext clients in and relays
// them, and starts a goroutine only when a session needs one (see
// sessionloop_linux.go and errOnLoop). On goroutines, while relaying, a
// second goroutine owns the server-to-client direction.
type session struct {
	srv  *Server
	conn net.Conn
	// raw is the client's socket under conn (under TLS, conn is the TLS
	// connection on it); Server.Close closes it. Under kickMu once the
	// session relays: a round on the event loop replaces both.
	raw net.Conn
	// be reads and writes the startup and authentication. negotiate makes
	// it, once the encryption requests are answered, and the greeting ends
	// it (nil: send writes to conn). Made earlier, it was thrown away
	// unused: 8.5 kB of garbage per login (its reader takes an 8 kB buffer).
	be *pgproto3.Backend
	// clientRd reads the client once the session relays. be's reader holds
	// nothing back at that point (see messageReader).
	clientRd *frameReader
	log      *slog.Logger
	key      cancelKey
	state    atomic.Int32
	// server is the connection the client holds now, for cancel routing.
	server atomic.Pointer[serverConn]
	// waitStart (Unix ns, 0: none) is when the transaction-mode client
	// began to wait for a server connection, its statement sent; cancelAt
	// is when a cancel came for it meanwhile, to forward once it has one
	// (see txClient.beginLease).
	waitStart, cancelAt atomic.Int64
	// overLimit marks a client accepted beyond max_client_conn: it is told
	// so after its startup packet, as PostgreSQL does.
	overLimit bool
	// kicked asks the relay to stop at once and let the session act (see
	// kick); retry re-kicks a session that could not act yet.
	kicked atomic.Bool
	retry  *time.Timer
	// kickMu orders kicks with the start and end of relay rounds; relaying
	// is true while one runs.
	kickMu   sync.Mutex
	relaying bool
	// kickDone, when set, is closed once the session has acted on a kick
	// (see kickToMove). Under kickMu.
	kickDone chan struct{}
	// evr is the relay round the event loop runs for this session, if any;
	// connClosed marks a connection closed by Server.Close. Both under kickMu.
	evr        *evRelay
	connClosed bool
	// txMode marks a transaction-pooling session.
	txMode bool
	// drainBy is when a client that cannot be moved off a rotated-out
	// credential is disconnected; zero while none is pending.
	drainBy time.Time
	// channelBinding is the tls-server-end-point data of the certificate
	// this client's TLS handshake was served; nil in plaintext.
	channelBinding []byte
	// pending is what goes out before the greeting: the
	// AuthenticationSASLFinal of a login on the loop that a session
	// goroutine goes on with (loopLogin.handOver).
	pending []byte
	// atEnd is what end undoes, last first: what the session set up (its
	// place in a pool, its server connection, its cancel key), which a
	// deferred call cannot undo: a session may end on the event loop, or on
	// another goroutine than the one that set it up (errOnLoop).
	atEnd []func()
}

func (s *session) setState(st sessionState) {
	old := sessionState(s.state.Swap(int32(st)))
	s.srv.metrics.clientState(old, true, st, true)
}

// run serves the client until it leaves, then closes its connection;
// unless the event loop holds the client (errOnLoop), where its goroutine
// ends and the end of the loop's round carries on (resumeTx,
// resumeSession).
func (s *session) run(ctx context.Context) {
	s.srv.metrics.clientState(0, false, stateStartup, true)
	err := s.toNetpoller()
	if err == nil {
		err = s.serve(ctx)
	}
	s.endUnlessOnLoop(err)
}

// endUnlessOnLoop ends the session with err, unless the event loop holds
// it (errOnLoop), whose round's end carries it on.
func (s *session) endUnlessOnLoop(err error) {
	if !errors.Is(err, errOnLoop) {
		s.end(err)
	}
}

// toNetpoller puts a client the event loop accepted (a pollConn) in Go's
// netpoller, for a session goroutine to serve.
func (s *session) toNetpoller() error {
	pc, ok := s.conn.(*pollConn)
	if !ok {
		return nil
	}
	c, err := pc.handBack()
	if err != nil {
		return &disconnect{err}
	}
	s.kickMu.Lock()
	s.conn, s.raw = c, c
	closed := s.connClosed
	s.kickMu.Unlock()
	if closed {
		_ = c.Close()
		return &disconnect{net.ErrClosed}
	}
	s.clientRd.src = c
	return nil
}

// end closes the session: it undoes what atEnd holds, tells the client why
// it ends (err, unless nil) and closes its connection.
func (s *session) end(err error) {
	for i := len(s.atEnd) - 1; i >= 0; i-- {
		s.atEnd[i]()
	}
	before := sessionState(s.state.Load())
	s.setState(stateClosing)
	if err != nil {
		s.fail(err, before <= stateAuth)
	}
	_ = s.conn.Close()
	s.srv.sessionEnded(s)
}

// fail logs err once and tells the client, unless the client is already
// gone. A client that had not logged in yet (beforeLogin) is logged within
// the bounds of loginFailures.
func (s *session) fail(err error, beforeLogin bool) {
	if isDisconnect(err) {
		s.log.Debug("client disconnected", "err", err)
		return
	}
	w := toWire(err)
	s.logFailure(w, err, beforeLogin)
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = s.send(errorResponse(w))
}

// logFailure logs a failed session at WARN, unless it failed before
// logging in while such failures come too fast (loginFailures).
func (s *session) logFailure(w *WireError, err error, beforeLogin bool) {
	if !beforeLogin {
		s.log.Warn("client session failed", "sqlstate", w.Code, "err", err)
		return
	}
	ok, first := s.srv.loginFails.admit(w.Code, time.Now())
	switch {
	case first:
		s.srv.log.Warn("clients failing to log in fast: further failures of this kind are counted, not logged, until the window ends",
			"sqlstate", w.Code, "logged", loginFailBurst, "window", loginFailWindow)
	case ok:
		s.log.Warn("client session failed", "sqlstate", w.Code, "err", err)
	}
}

// send writes messages to the client at once: every message pgrotate
// itself sends. During the startup they go through s.be, after what it
// holds (auth.Authenticate leaves AuthenticationSASLFinal queued there).
func (s *session) send(msgs ...pgproto3.BackendMessage) error {
	w := s.outbox()
	for _, m := range msgs {
		s.queue(&w, m)
	}
	return s.flush(&w)
}

// outbox holds the messages queued for one write when s.be is gone.
type outbox struct {
	buf []byte
	err error
}

// outbox starts the next write with what is pending.
func (s *session) outbox() outbox {
	w := outbox{buf: s.pending}
	s.pending = nil
	return w
}

// queue encodes m for the next flush: into s.be, after what it holds, or
// into w. m is not kept, so one value can be queued again with other
// contents.
func (s *session) queue(w *outbox, m pgproto3.BackendMessage) {
	if s.be != nil {
		s.be.Send(m)
		return
	}
	if w.err == nil {
		w.buf, w.err = m.Encode(w.buf)
	}
}

// flush writes what queue encoded.
func (s *session) flush(w *outbox) error {
	if s.be != nil {
		return s.be.Flush()
	}
	if w.err != nil {
		return w.err
	}
	_, err := s.conn.Write(w.buf)
	return err
}

// serve runs startup, authentication and the relay.
func (s *session) serve(ctx context.Context) error {
	_ = s.conn.SetDeadline(time.Now().Add(s.srv.cfg.Limits.AuthTimeout.Duration))
	msg, err := s.readStartup()
	if err != nil {
		return err
	}
	if cr, ok := msg.(*pgproto3.CancelRequest); ok {
		s.srv.forwardCancel(ctx, cr)
		return nil
	}
	if s.overLimit {
		return fatal(codeTooManyConnections, "sorry, too many clients already")
	}
	params, err := parseStartup(msg.(*pgproto3.StartupMessage))
	if err != nil {
		return err
	}
	s.log = s.log.With("user", params.user, "database", params.database)
	return s.serveLogin(ctx, params)
}

// serveLogin authenticates the client whose startup packet was read, then
// serves it.
func (s *session) serveLogin(ctx context.Context, params *startupParams) error {
	if err := s.authenticate(params); err != nil {
		return err
	}
	return s.serveAuthenticated(ctx, params)
}

// serveAuthenticated serves an authenticated client.
func (s *session) serveAuthenticated(ctx context.Context, params *startupParams) error {
	p, err := s.srv.poolFor(params)
	if err != nil {
		return err
	}
	_ = s.conn.SetDeadline(time.Time{})
	if p.db.PoolMode == configs.PoolTransaction {
		return s.serveTransactions(ctx, p, params)
	}
	return s.serveSession(ctx, p, params)
}

// authenticate proves the client knows a password of its configured user.
func (s *session) authenticate(p *startupParams) error {
	s.setState(stateAuth)
	// PostgreSQL caps authentication messages at 64 kB (PQ_LARGE_MESSAGE_LIMIT
	// applies only after authentication).
	s.be.SetMaxBodyLen(65535)
	client, known := s.srv.clients.Load().lookup(p.user)
	err := s.authResult(auth.Authenticate(s.be, p.user, client.secrets, s.authOptions()), known)
	s.delayFailure(err)
	return err
}

func (s *session) authOptions() auth.Options {
	return auth.Options{
		AllowMD5:       s.srv.cfg.Auth.AllowMD5,
		ChannelBinding: s.channelBinding, // offers SCRAM-SHA-256-PLUS over TLS
	}
}

// authResult counts a failed authentication and says whose it was.
func (s *session) authResult(err error, known bool) error {
	if err == nil {
		return nil
	}
	s.srv.metrics.authFailed(authFailureReason(err))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &disconnect{fmt.Errorf("authentication timeout: %w", err)}
	}
	if !known {
		return fmt.Errorf("authenticating unknown user: %w", err)
	}
	return fmt.Errorf("authenticating: %w", err)
}

// delayFailure slows password guessing down after a wrong password, as
// PostgreSQL's auth_delay does.
func (s *session) delayFailure(err error) {
	var failed *auth.FailedError
	if errors.As(err, &failed) {
		time.Sleep(s.srv.cfg.Limits.AuthFailureDelay.Duration)
	}
}

// applySettings applies the client's startup parameters to the server
// session, so it runs with the client's application_name, DateStyle, …
// A connection the same application used last holds them already (see
// pool.release); one that holds another client's is reset first.
func (s *session) applySettings(ctx context.Context, sc *serverConn, set *startupSettings) error {
	if sc.appliedKey == set.key {
		return nil
	}
	reset := ""
	if sc.appliedKey != "" {
		reset = "RESET ALL" // another application's settings
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sc.appliedKey = unknownSettings // until every Query ran (see txClient.applySettings)
	if err := sc.roundTrip(ctx, settingsQueries(reset, set.sql), nil); err != nil {
		return refusedSetting(err, "applying startup parameters")
	}
	sc.appliedKey = set.key
	return nil
}

// greet completes the startup as PostgreSQL would: AuthenticationOk, the
// server's parameters, pgrotate's own BackendKeyData, ReadyForQuery.
func (s *session) greet(sc *serverConn) error { return s.greetWith(sortedParams(sc.params), nil) }

// greetWith greets with the given server parameters. It ends the startup:
// the startup Backend and its 8 KiB read buffer are let go, which is a third
// of what an idle client costs.
//
// Each message is encoded as it is queued, so one ParameterStatus value
// serves every parameter, not one allocated per parameter.
func (s *session) greetWith(params reportedParams, settings map[string]string) error {
	w := s.outbox()
	s.queueGreeting(&w, params, settings)
	err := s.flush(&w)
	s.be = nil
	return err
}

// queueGreeting queues the greeting: AuthenticationOk, params (each with
// the client's own value where settings has one), the cancel key,
// ReadyForQuery.
func (s *session) queueGreeting(w *outbox, params reportedParams, settings map[string]string) {
	s.queue(w, &pgproto3.AuthenticationOk{})
	var ps pgproto3.ParameterStatus
	for _, p := range params {
		ps.Name, ps.Value = p.name, p.value
		if v, ok := settings[p.name]; ok {
			ps.Value = v
		}
		s.queue(w, &ps)
	}
	s.queue(w, &pgproto3.BackendKeyData{ProcessID: s.key.pid, SecretKey: s.key.secret[:]})
	s.queue(w, &pgproto3.ReadyForQuery{TxStatus: 'I'})
}

// disconnect wraps an error caused by the client going away or misbehaving
// at the transport level: there is nobody to send an ErrorResponse to.
type disconnect struct{ err error }

func (d *disconnect) Error() string { return "client connection: " + d.err.Error() }
func (d *disconnect) Unwrap() error { return d.err }

// asDisconnect marks err as the client leaving, unless it says so already
// (a client reader's reset, see frameReader.readErr).
func asDisconnect(err error) error {
	var d *disconnect
	if errors.As(err, &d) {
		return err
	}
	return &disconnect{err}
}

func isDisconnect(err error) bool {
	var d *disconnect
	return errors.As(err, &d) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// authFailureReason is the metric label of a failed authentication: a few
// fixed values, never anything the client chose.
func authFailureReason(err error) string {
	var failed *auth.FailedError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.As(err, &failed) && failed.Reason == "unknown user":
		return "unknown_user"
	case errors.As(err, &failed):
		return "wrong_password"
	case isDisconnect(err):
		return "client_left"
	default:
		return "protocol"
	}
}
