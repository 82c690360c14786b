package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgrotate/pgrotate/rotation"
)

// serverConn is one logged-in connection to PostgreSQL, taken over from pgconn.
// It is owned by exactly one goroutine at a time: the pool while idle, the
// session that leased it while leased.
type serverConn struct {
	conn      net.Conn
	rd        *frameReader
	pid       uint32
	secretKey []byte
	params    map[string]string // the server's reported parameters, kept current
	gen       rotation.Generation
	db        string
	createdAt time.Time
	lifetime  time.Duration // server_lifetime with jitter; set by the pool
	// checkedAt is when upkeep last checked the connection while idle.
	checkedAt time.Time
	txStatus  byte         // from the last ReadyForQuery
	state     atomic.Int32 // a connState; written by the pool
	// cancels counts cancel requests on their way to this connection's
	// backend (Server.forwardCancel). One that arrives after the client's
	// transaction ended would cancel whatever the backend runs by then,
	// maybe another client's query: a connection released while one is on
	// its way goes back to the pool only once it has arrived (an idle
	// backend ignores a cancel).
	cancels atomic.Int32
	// appliedKey is the settingsKey of the client settings the session
	// holds over its defaults ("": none). Transaction pooling applies a
	// client's settings when they differ (see txClient); session pooling
	// applies the departing client's again after DISCARD ALL (see
	// pool.release), so the next login of the same application finds them.
	appliedKey string
	// stmts: transaction pooling's shared statements prepared on this
	// connection.
	stmts   connStmts
	cleanup txCleanup // what the last transaction leaves for releaseTx to undo
	// evicted: the statements the cleanup deallocates (cleanEvict).
	evicted []string
	// unread counts the ReadyForQuery replies to a session reset that were
	// not read yet (see sendReset).
	unread     int
	cancelNet  string
	cancelAddr string
}

// dialServer logs in as gen's credential and takes the raw connection over.
func dialServer(ctx context.Context, up *Upstream, gen rotation.Generation) (*serverConn, error) {
	pc, err := up.Connect(ctx, gen.Cred)
	if err != nil {
		return nil, err
	}
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, fmt.Errorf("syncing upstream connection: %w", err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, fmt.Errorf("taking over upstream connection: %w", err)
	}
	// Cancel requests go where this connection went: with several upstream
	// hosts, that is whichever answered.
	remote := hc.Conn.RemoteAddr()
	network, addr := remote.Network(), remote.String()
	return &serverConn{
		conn:       hc.Conn,
		rd:         newServerReader(hc.Conn),
		pid:        hc.PID,
		secretKey:  hc.SecretKey,
		params:     hc.ParameterStatuses,
		gen:        gen,
		db:         up.db.Name,
		createdAt:  time.Now(),
		txStatus:   hc.TxStatus,
		stmts:      newConnStmts(),
		cancelNet:  network,
		cancelAddr: addr,
	}, nil
}

// goIdle marks the connection idle in its pool. Its reader, at a message
// boundary, lets go of its buffer.
func (s *serverConn) goIdle() {
	s.rd.release()
	s.state.Store(int32(connIdle))
}

// close closes the connection, telling the server first so it does not log an
// unexpected EOF.
func (s *serverConn) close() {
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = s.conn.Write([]byte{'X', 0, 0, 0, 4})
	_ = s.conn.Close()
}

// exec runs sql with the simple query protocol and reads up to ReadyForQuery,
// keeping params current. Only call it when the connection is idle at a
// message boundary.
func (s *serverConn) exec(ctx context.Context, sql string) error {
	return s.roundTrip(ctx, []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}, nil)
}

// roundTrip sends msgs (ending in Query or Sync) and reads every reply up to
// the ReadyForQuery that answers the last Query or Sync, handing each other
// message to onMsg when it is not nil. The first ErrorResponse is returned as
// a *serverError after that ReadyForQuery, so the connection is idle again
// whatever happened. The replies to a reset sent earlier are read first
// (see unread); a failed reset is returned as such.
func (s *serverConn) roundTrip(ctx context.Context, msgs []pgproto3.FrontendMessage, onMsg func(typ byte, body []byte) error) error {
	if deadline, ok := ctx.Deadline(); ok {
		_ = s.conn.SetDeadline(deadline)
		defer s.conn.SetDeadline(time.Time{})
	}
	if err := s.readReset(); err != nil {
		return err
	}
	n, err := s.send(msgs)
	if err != nil {
		return err
	}
	return s.readReplies(n, onMsg)
}

// sendReset sends msgs, a session reset, and leaves their replies unread:
// the connection's next user reads them (settle, roundTrip). Its release
// then waits for no round trip, a blocking read that could park and wake a
// thread once more per session-mode login.
func (s *serverConn) sendReset(msgs []pgproto3.FrontendMessage, deadline time.Time) error {
	_ = s.conn.SetWriteDeadline(deadline)
	defer s.conn.SetWriteDeadline(time.Time{})
	n, err := s.send(msgs)
	s.unread += n
	return err
}

// settle reads the replies to a reset sent by sendReset, if any are
// unread, so that the connection is idle at a message boundary. An error
// means the reset failed and the connection must not be used.
func (s *serverConn) settle(deadline time.Time) error {
	if s.unread == 0 {
		return nil
	}
	_ = s.conn.SetReadDeadline(deadline)
	defer s.conn.SetReadDeadline(time.Time{})
	return s.readReset()
}

func (s *serverConn) readReset() error {
	n := s.unread
	if n == 0 {
		return nil
	}
	s.unread = 0
	if err := s.readReplies(n, nil); err != nil {
		return fmt.Errorf("resetting the session: %w", err)
	}
	if s.txStatus != 'I' {
		return fmt.Errorf("resetting the session: transaction status %q after it", s.txStatus)
	}
	return nil
}

// send writes msgs and returns how many ReadyForQuery replies they ask for
// (one per Query or Sync).
func (s *serverConn) send(msgs []pgproto3.FrontendMessage) (int, error) {
	var out []byte
	ready := 0
	for _, m := range msgs {
		var err error
		if out, err = m.Encode(out); err != nil {
			return 0, fmt.Errorf("encoding %T: %w", m, err)
		}
		switch m.(type) {
		case *pgproto3.Query, *pgproto3.Sync:
			ready++
		}
	}
	if _, err := s.conn.Write(out); err != nil {
		return 0, fmt.Errorf("sending control messages: %w", err)
	}
	return ready, nil
}

// readReplies reads up to the n-th ReadyForQuery (see roundTrip).
func (s *serverConn) readReplies(n int, onMsg func(typ byte, body []byte) error) error {
	var firstErr error
	for {
		typ, body, err := s.rd.next()
		if err != nil {
			return fmt.Errorf("reading reply: %w", err)
		}
		switch typ {
		case 'E':
			if firstErr == nil {
				firstErr = decodeServerError(body)
			}
		case 'S':
			s.noteParameter(body)
		case 'Z':
			s.txStatus = readyStatus(body)
			if n--; n <= 0 {
				s.rd.release() // nothing more is expected until the next user
				return firstErr
			}
		default:
			if onMsg != nil && firstErr == nil {
				firstErr = onMsg(typ, body)
			}
		}
	}
}

// noteParameter records a ParameterStatus message body. A value the
// connection holds already costs no allocation: a session-mode login reads
// a dozen of them in its reset's replies.
func (s *serverConn) noteParameter(body []byte) {
	name, value, ok := parameterStatus(body)
	if !ok {
		return
	}
	if old, known := s.params[string(name)]; known && old == string(value) {
		return
	}
	s.params[string(name)] = string(value)
}

// parameterStatus splits a ParameterStatus body, a name and a value, each
// ending in a zero byte, without copying them.
func parameterStatus(body []byte) (name, value []byte, ok bool) {
	name, rest, ok := cstring(body)
	if !ok {
		return nil, nil, false
	}
	value, _, ok = cstring(rest)
	return name, value, ok
}

// cancel asks PostgreSQL to cancel whatever this connection runs now,
// within cancelTimeout. The cancel request travels on a new connection, as
// the protocol requires.
func (s *serverConn) cancel(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, cancelTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, s.cancelNet, s.cancelAddr)
	if err != nil {
		return fmt.Errorf("dialing for cancel: %w", err)
	}
	defer c.Close()
	msg, err := (&pgproto3.CancelRequest{ProcessID: s.pid, SecretKey: s.secretKey}).Encode(nil)
	if err != nil {
		return fmt.Errorf("encoding cancel: %w", err)
	}
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("sending cancel: %w", err)
	}
	// The server closes the connection when done; waiting makes the cancel
	// arrive before the client can send its next query.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Read(make([]byte, 1))
	return nil
}

// unknownSettings is the appliedKey of a connection whose settings a
// statement may have changed, or that a settings Query left half applied:
// no client's settingsKey, not even the empty one of a client without
// settings.
const unknownSettings = "\xff"

// readyStatus extracts the transaction status of a ReadyForQuery body.
func readyStatus(body []byte) byte {
	if len(body) != 1 {
		return 0
	}
	return body[0]
}

// serverError is an ErrorResponse from PostgreSQL on a control query.
type serverError struct {
	Severity, Code, Message string
	Detail, Hint            string // for the client, when the error is passed on
}

func (e *serverError) Error() string {
	return fmt.Sprintf("%s: %s (SQLSTATE %s)", e.Severity, e.Message, e.Code)
}

func decodeServerError(body []byte) error {
	var er pgproto3.ErrorResponse
	if err := er.Decode(body); err != nil {
		return fmt.Errorf("decoding error response: %w", err)
	}
	return &serverError{Severity: er.Severity, Code: er.Code, Message: er.Message, Detail: er.Detail, Hint: er.Hint}
}

// isServerError reports whether err came from PostgreSQL rather than the network.
func isServerError(err error) bool {
	var se *serverError
	return errors.As(err, &se)
}

// query runs sql with the simple query protocol and returns every row of
// every result, as text (NULL as ""). For pgrotate's own small control
// queries only; the relay never decodes rows.
func (s *serverConn) query(ctx context.Context, sql string) ([][]string, error) {
	var rows [][]string
	err := s.roundTrip(ctx, []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}, func(typ byte, body []byte) error {
		if typ != 'D' {
			return nil
		}
		var dr pgproto3.DataRow
		if err := dr.Decode(body); err != nil {
			return fmt.Errorf("decoding row: %w", err)
		}
		row := make([]string, len(dr.Values))
		for i, v := range dr.Values {
			row[i] = string(v)
		}
		rows = append(rows, row)
		return nil
	})
	return rows, err
}

// afterCancels runs release once no cancel request is on its way to the
// backend (see cancels), waiting at most as long as forwarding one may
// take, on a goroutine of its own (releases run on the event loop too),
// and reports true; with none on its way it does nothing and reports
// false, for the caller to release the connection at once.
func (sc *serverConn) afterCancels(release func()) bool {
	if sc.cancels.Load() == 0 {
		return false
	}
	go func() {
		for deadline := time.Now().Add(cancelTimeout); sc.cancels.Load() > 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		release()
	}()
	return true
}
