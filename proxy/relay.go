package proxy

import (
	"errors"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Interest sets of the relay: the only message types it decodes.
var (
	// fromClient: Terminate ends the session; Query, Sync and FunctionCall each
	// earn exactly one ReadyForQuery, which tells when the server is idle again.
	// Query and FunctionCall bodies stream through: only their headers count.
	// The extended protocol's messages open a batch that only Sync closes
	// (relayState.batch); Parse and Close are read whole, to keep the
	// unnamed statement (relayState.unnamed).
	fromClient = newTypeSet('X', 'S', 'P', 'C').withHeaders('Q', 'F', 'B', 'D', 'E', 'H')
	// fromClientGuarded: the same, with Query text and small FunctionCalls
	// read whole too, for the role guard.
	fromClientGuarded = newTypeSet('X', 'S', 'Q', 'P', 'C').withHeaders('B', 'D', 'E', 'H').with('F', smallWhole)
	// fromServer: ReadyForQuery (transaction status), ParameterStatus (kept
	// current so the next client is greeted with true values) and
	// ErrorResponse (one that ends the session is logged, see
	// logServerFatal; a large one is passed by its header).
	fromServer = newTypeSet('Z', 'S').with('E', smallWhole)
)

// relayState is what both directions of one relay know about the server.
type relayState struct {
	// pending counts requests sent to the server that have not yet been
	// answered with ReadyForQuery. Zero with status 'I' means idle.
	pending atomic.Int64
	status  atomic.Uint32 // transaction status of the last ReadyForQuery
	// stopWhenIdle asks the server direction to stop right after the
	// ReadyForQuery that leaves the server idle: the moment a session can
	// move to another connection.
	stopWhenIdle atomic.Bool

	// The client direction writes these while a round runs; they are read
	// between rounds.

	// batch: the client has sent extended-protocol messages since its last
	// Sync. They run in one implicit transaction, which Sync ends: the
	// server is not idle even if it has answered everything (a client that
	// sends Flush, as pipelines do, waits for answers before it syncs).
	batch bool
	// unnamed: what the server holds as the client's unnamed statement. A
	// move parses it again on the new connection: pgx's describe-exec mode
	// parses in one round trip and binds in the next, and a move may fall
	// between them.
	unnamed unnamedStmt
	// custom: the names of the custom settings (app.tenant_id) the client
	// set at startup or may have set since. PostgreSQL lists them nowhere
	// (not in pg_settings), so a move reads and carries these by name.
	custom customSettings
}

func newRelayState() *relayState {
	st := &relayState{}
	st.status.Store('I')
	return st
}

// idle reports whether the server has answered everything and is outside a
// transaction, implicit ones too. Between rounds only (batch).
func (st *relayState) idle() bool {
	return st.pending.Load() == 0 && byte(st.status.Load()) == 'I' && !st.batch
}

// clientInspector watches client messages in the session-mode relay.
type clientInspector struct {
	st      *relayState
	guard   *roleGuard // nil when the role guard is off
	log     interface{ Warn(string, ...any) }
	m       *dbMetrics
	scratch []byte
}

func (c *clientInspector) inspect(typ byte, body []byte) (verdict, error) {
	switch typ {
	case 'X':
		return dropStop, nil
	case 'P':
		c.st.batch = true
		return c.onParse(body), nil
	case 'C':
		c.st.batch = true
		if len(body) >= 2 && body[0] == 'S' && body[1] == 0 {
			c.st.unnamed.drop() // closed: a move must not bring it back
		}
		return forward, nil
	case 'B', 'D', 'E', 'H':
		c.st.batch = true
		return forward, nil
	case 'Q':
		c.st.pending.Add(1)
		c.st.batch = false // a Query ends the implicit transaction too
		c.m.queries.Inc()
		c.st.unnamed.drop()
		sql := trimNUL(body) // nil when unread (no role guard)
		m := scanText(sql)
		c.st.custom.scan(sql, m)
		if c.guard != nil && c.guard.refuses(sql, m) {
			countRefusal(c.m, c.log)
			c.scratch = c.guard.refusedQuery(c.scratch[:0])
			return rewrite, nil
		}
		return forward, nil
	}
	c.st.pending.Add(1) // Sync, FunctionCall
	c.st.batch = false
	c.m.queries.Inc()
	if typ == 'F' && c.guard != nil && c.guard.refusesCall(body) {
		countRefusal(c.m, c.log)
		c.scratch = c.guard.refusedQuery(c.scratch[:0]) // one ReadyForQuery, as for the call
		return rewrite, nil
	}
	return forward, nil
}

func (c *clientInspector) replacement() []byte { return c.scratch }

// onParse applies the role guard to a Parse and keeps what reaches the
// server as the unnamed statement, if it is that one.
func (c *clientInspector) onParse(body []byte) verdict {
	name, rest, _ := cstring(body)
	v := forward
	query, _, _ := cstring(rest)
	m := scanText(query)
	c.st.custom.scan(query, m)
	if c.guard != nil {
		if c.guard.refuses(query, m) {
			countRefusal(c.m, c.log)
			c.scratch, _ = c.guard.refusedParse(body).Encode(c.scratch[:0])
			body, v = c.scratch[5:], rewrite
		}
	}
	if len(name) == 0 {
		c.st.unnamed.keep(body)
	}
	return v
}

// serverInspector watches server messages in the relay.
type serverInspector struct {
	st  *relayState
	sc  *serverConn
	m   *dbMetrics
	log interface{ Warn(string, ...any) }
}

func (s serverInspector) inspect(typ byte, body []byte) (verdict, error) {
	switch typ {
	case 'Z':
		s.st.status.Store(uint32(readyStatus(body)))
		if readyStatus(body) == 'I' {
			s.m.transactions.Inc()
		}
		if s.st.pending.Add(-1) == 0 && readyStatus(body) == 'I' && s.st.stopWhenIdle.Load() {
			return forwardStop, nil
		}
	case 'S':
		s.sc.noteParameter(body)
	case 'E':
		var e pgproto3.ErrorResponse
		if e.Decode(body) == nil {
			logServerFatal(s.log, s.sc, &e)
		}
	}
	return forward, nil
}

// logServerFatal logs an error that ends the server session
// (pg_terminate_backend, a server shutting down, idle_session_timeout): the
// client is told, as the error is passed on, and usually leaves at once,
// so the round ended with the client's EOF, logged at debug, and the
// operator never learned that the server had ended the session.
func logServerFatal(log interface{ Warn(string, ...any) }, sc *serverConn, e *pgproto3.ErrorResponse) {
	sev := e.SeverityUnlocalized
	if sev == "" {
		sev = e.Severity
	}
	if sev == "FATAL" || sev == "PANIC" {
		log.Warn("the database server ended a session", "sqlstate", e.Code, "message", e.Message, "pid", sc.pid)
	}
}

// roundEnd says why a relay round ended.
type roundEnd int

const (
	// endClientLeft: the client sent Terminate.
	endClientLeft roundEnd = iota
	// endClientGone: the client connection failed or closed.
	endClientGone
	// endServerLost: the server connection failed or closed.
	endServerLost
	// endKicked: pgrotate interrupted both directions to act on the session
	// (move it to a new credential generation); nothing is lost, the relay
	// resumes where it stopped.
	endKicked
)

// relayRound forwards both directions until the client leaves, a side fails
// or the session is kicked. While it runs, a second goroutine owns the
// server-to-client direction; both are stopped when it returns.
func (s *session) relayRound(sc *serverConn, st *relayState, ci *clientInspector, m *dbMetrics) (roundEnd, error) {
	if !s.loopRelaysClient() {
		// Before the round, while no kick touches sc.conn.
		if err := sc.forGoroutines(); err != nil {
			return endServerLost, err
		}
	}
	if s.setRelaying(true, sc) { // a kick that came between rounds
		s.setRelaying(false, sc)
		return endKicked, nil
	}
	if end, err, ok := s.relayOnLoop(sc, st, ci, m); ok {
		return end, err
	}
	if err := s.toNetpoller(); err != nil { // a client the loop logged in
		s.setRelaying(false, sc)
		return endClientLeft, err
	}
	fromSrv := make(chan error, 1)
	go func() {
		err := sc.rd.pump(s.conn, fromServer, serverInspector{st: st, sc: sc, m: m, log: s.log})
		if err == nil { // stopped at an idle point on request
			s.kicked.Store(true)
		}
		_ = s.conn.SetReadDeadline(time.Now()) // stop the client direction too
		fromSrv <- err
	}()
	interest := fromClient
	if ci.guard != nil {
		interest = fromClientGuarded
	}
	cerr := s.clientRd.pump(sc.conn, interest, ci)
	_ = sc.conn.SetReadDeadline(time.Now())
	if cerr == nil || !isDeadline(cerr) {
		// The client is leaving: a blocked write to it must not hold us.
		_ = s.conn.SetWriteDeadline(time.Now())
	}
	serr := <-fromSrv
	s.setRelaying(false, sc)
	_ = sc.conn.SetReadDeadline(time.Time{})
	_ = s.conn.SetWriteDeadline(time.Time{})
	return classifyRound(cerr, serr, s.kicked.Load())
}

// classifyRound decides why a round ended from the errors of its two
// directions: cerr of client-to-server, serr of server-to-client.
func classifyRound(cerr, serr error, kicked bool) (roundEnd, error) {
	switch {
	case serr != nil && !isDeadline(serr) && !isWriteErr(serr):
		return endServerLost, serr
	case cerr == nil:
		return endClientLeft, nil
	case errors.Is(cerr, errFrameLength):
		return endClientGone, withCause(fatal(codeProtocolViolation, "invalid frontend message length"), cerr)
	case !isDeadline(cerr):
		return endClientGone, asDisconnect(cerr)
	case isWriteErr(serr):
		return endClientGone, &disconnect{serr}
	case kicked:
		return endKicked, nil
	default:
		return endClientGone, &disconnect{cerr}
	}
}

func isDeadline(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func isWriteErr(err error) bool {
	var we *writeError
	return errors.As(err, &we)
}
