package proxy

import (
	"errors"
	"os"
	"sync/atomic"
	"time"
)

// Interest sets of the relay: the only message types it decodes.
var (
	// fromClient: Terminate ends the session; Query, Sync and FunctionCall each
	// earn exactly one ReadyForQuery, which tells when the server is idle again.
	fromClient = newTypeSet('X', 'Q', 'S', 'F')
	// fromServer: ReadyForQuery (transaction status) and ParameterStatus (kept
	// current so the next client is greeted with true values).
	fromServer = newTypeSet('Z', 'S')
)

// relayState is what both directions of one relay know about the server.
type relayState struct {
	// pending counts requests sent to the server that have not yet been
	// answered with ReadyForQuery. Zero with status 'I' means idle.
	pending atomic.Int64
	status  atomic.Uint32 // transaction status of the last ReadyForQuery
}

// clientInspector watches client messages in the relay.
type clientInspector struct{ st *relayState }

func (c clientInspector) inspect(typ byte, _ []byte) (verdict, error) {
	if typ == 'X' {
		return dropStop, nil
	}
	c.st.pending.Add(1)
	return forward, nil
}

// serverInspector watches server messages in the relay.
type serverInspector struct {
	st *relayState
	sc *serverConn
}

func (s serverInspector) inspect(typ byte, body []byte) (verdict, error) {
	switch typ {
	case 'Z':
		s.st.status.Store(uint32(readyStatus(body)))
		s.st.pending.Add(-1)
	case 'S':
		s.sc.noteParameter(body)
	}
	return forward, nil
}

// relay forwards both directions until the client leaves or a side fails. It
// reports whether the server connection is idle at a message boundary and so
// may be reset and reused.
func (s *session) relay(sc *serverConn) (reusable bool, err error) {
	st := &relayState{}
	st.status.Store('I')
	fromSrv := make(chan error, 1)
	go func() {
		err := sc.rd.pump(s.conn, fromServer, serverInspector{st: st, sc: sc})
		// Unblock the client direction: the session ends with the server.
		_ = s.conn.SetReadDeadline(time.Now())
		fromSrv <- err
	}()
	cerr := s.clientRd.pump(sc.conn, fromClient, clientInspector{st: st})
	// The client left (or failed): stop the server direction at once.
	_ = sc.conn.SetReadDeadline(time.Now())
	_ = s.conn.SetWriteDeadline(time.Now())
	serr := <-fromSrv
	_ = sc.conn.SetReadDeadline(time.Time{})

	serverBroken := serr != nil && !errors.Is(serr, os.ErrDeadlineExceeded) && !isWriteErr(serr)
	reusable = !serverBroken && sc.rd.atBoundary() && st.pending.Load() == 0 && byte(st.status.Load()) == 'I'
	sc.txStatus = byte(st.status.Load())
	switch {
	case serverBroken && sc.rd.passthrough == 0:
		// The client stands between messages: tell it why the session ends
		// (PostgreSQL usually has already sent its own FATAL).
		return false, withCause(fatal(codeConnectionFailure, "the database server closed the connection"), serr)
	case serverBroken:
		return false, &disconnect{serr}
	case errors.Is(cerr, errFrameLength):
		return reusable, withCause(fatal(codeProtocolViolation, "invalid frontend message length"), cerr)
	case cerr != nil && !errors.Is(cerr, os.ErrDeadlineExceeded):
		return reusable, &disconnect{cerr}
	default:
		return reusable, nil
	}
}

func isWriteErr(err error) bool {
	var we *writeError
	return errors.As(err, &we)
}
