//go:build linux

package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgrotate/pgrotate/auth"
	"github.com/pgrotate/pgrotate/configs"
)

// loopLogin is a client logging in on the event loop: its startup packet
// and its SCRAM exchange are read and answered there, and a client of a
// transaction-mode pool goes from its greeting straight to waiting on the
// loop for its first query. No goroutine runs for it at all.
//
// Why: on a goroutine, each message of a login was a read that failed with
// EAGAIN, a park in Go's netpoller, a wake-up and often a hand-off between
// threads, then hand-offs to the loop and back; a login cost twice
// PgBouncer's CPU (bench/README.md, "Client logins"). Applications that
// connect per request pay that on every request.
//
// The loop runs the login of every plaintext client (pgrotate without
// client TLS) whose user logs in with SCRAM (or is unknown: the mock
// exchange). A client of a transaction-mode pool that knows its server's
// defaults is greeted there too (enter); any other client goes on in a
// session goroutine once authenticated (handOver): a session-mode client
// waits there for its server connection, and is relayed on the loop
// without leaving it. An md5 login goes to a goroutine before that
// (toGoroutine); a CancelRequest is forwarded from one, as every failure
// that has an ErrorResponse to write is written from one (fail).
type loopLogin struct {
	s    *session
	ctx  context.Context
	l    *eventLoop
	slot int32
	fd   int
	rdr  fdReader
	// until is the authentication deadline (limits.auth_timeout).
	until time.Time
	phase loginPhase
	// sslDone and gssDone: an SSLRequest, a GSSENCRequest was answered.
	sslDone, gssDone bool
	// Set once the startup packet is read.
	params *startupParams
	known  bool // the user is configured
	x      *auth.Exchange
}

// loginPhase is what a loopLogin reads next.
type loginPhase int

const (
	loginStartup loginPhase = iota // SSLRequest, GSSENCRequest, StartupMessage or CancelRequest
	loginAuth                      // the client's SCRAM messages
)

// loginTag marks the epoll events of a login; Fd holds its slot.
const loginTag = 3

// maxAuthMessage is PostgreSQL's cap on an authentication message
// (PG_MAX_AUTH_TOKEN_LENGTH), as the goroutine login sets it.
const maxAuthMessage = 65535

// loginOnLoop starts sess's login on the event loop, if the loop can run it
// (see loopLogin); false leaves the session to its goroutine.
// here: the caller is the loop goroutine, which accepted sess's client.
func (s *Server) loginOnLoop(ctx context.Context, sess *session, here bool) bool {
	l := s.loginLoop()
	if l == nil || sess.overLimit {
		return false
	}
	pc, ok := sess.conn.(*pollConn)
	if !ok {
		pc, ok = toPollConn(sess.conn).(*pollConn)
	}
	if !ok {
		return false
	}
	sess.kickMu.Lock()
	sess.conn, sess.raw = pc, pc
	sess.kickMu.Unlock()
	s.metrics.clientState(0, false, stateStartup, true)
	lg := &loopLogin{s: sess, ctx: ctx, l: l, fd: pc.fd, rdr: fdReader{fd: pc.fd},
		until: time.Now().Add(s.cfg.Limits.AuthTimeout.Duration)}
	sess.clientRd.src = &lg.rdr
	if here {
		l.beginLogin(lg)
	} else if !l.post(func() { l.beginLogin(lg) }) {
		go sess.end(nil) // Close came first
	}
	return true
}

// loginLoop is the event loop that accepts and logs in plaintext
// clients: the server's loop, unless no pool is relayed there or clients
// may use TLS (which the loop does not speak); nil then.
func (s *Server) loginLoop() *eventLoop {
	if !s.loopLogins || s.tls.enabled() {
		return nil
	}
	return s.eventLoop()
}

// beginLogin registers the login's socket and reads what the client sent
// already: the listener defers accepts until a client's first packet is
// there (TCP_DEFER_ACCEPT, see daemon.listenTCP), so this read saves the
// epoll round that would wait for it. On a listener without it, the read
// finds nothing in most logins (84 % with pgbench -C: the loop accepts
// before the client has sent), which costs an EAGAIN, and epoll reports
// the packet later, the registration being level-triggered. Loop goroutine
// only.
func (l *eventLoop) beginLogin(lg *loopLogin) {
	lg.slot = l.logins.put(lg)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: lg.slot, Pad: loginTag}
	if err := epollCtl(l.epfd, syscall.EPOLL_CTL_ADD, lg.fd, &ev); err != nil {
		lg.forget()
		s := lg.s
		l.courier.spawn(func() { s.end(&disconnect{os.NewSyscallError("epoll_ctl", err)}) })
		return
	}
	lg.ready()
}

// forget takes the login off the loop. Loop goroutine only.
func (lg *loopLogin) forget() {
	l := lg.l
	_ = epollCtl(l.epfd, syscall.EPOLL_CTL_DEL, lg.fd, nil)
	l.logins.drop(lg.slot)
}

// handOff takes the login off the loop but leaves its socket registered,
// for the relay round the login starts at once to take the registration
// over (register) with one EPOLL_CTL_MOD. forget and the round's add were
// two calls, an epoll item freed and another allocated (~2 % of a login's
// perf samples, pgbench -C), of the four epoll_ctl calls a login made where
// PgBouncer makes two. settleHandOff must follow before the socket goes
// anywhere else. Loop goroutine only.
func (lg *loopLogin) handOff() {
	lg.l.logins.drop(lg.slot)
	lg.l.handedOff = lg.fd
}

// settleHandOff deletes the registration a login handed off if no round
// took it over (the greeting failed, or the session goes to a goroutine),
// so that no event names the login's slot, which another login may have.
// Loop goroutine only.
func (l *eventLoop) settleHandOff() {
	if l.handedOff < 0 {
		return
	}
	_ = epollCtl(l.epfd, syscall.EPOLL_CTL_DEL, l.handedOff, nil)
	l.handedOff = -1
}

// ready reads what the client sent and answers every whole message in it.
// Loop goroutine only.
func (lg *loopLogin) ready() {
	rd := lg.s.clientRd
	need := lg.need()
	if rd.end-rd.start < need {
		if err := rd.fill(need); err != nil {
			if err != errWouldBlock {
				lg.quit(err)
			}
			return
		}
	}
	for {
		n := lg.need()
		if n < 0 {
			lg.tooLong()
			return
		}
		if rd.end-rd.start < n {
			return
		}
		msg := rd.buf[rd.start : rd.start+n]
		rd.start += n
		if !lg.handle(msg) {
			return
		}
	}
}

// need is how many bytes the next whole message takes, as far as the
// reader shows; -1 for a length out of bounds.
func (lg *loopLogin) need() int {
	rd := lg.s.clientRd
	b := rd.buf[rd.start:rd.end]
	switch {
	case lg.phase == loginStartup && len(b) < 4:
		return 4
	case lg.phase == loginStartup:
		n := int(int32(binary.BigEndian.Uint32(b)))
		if !startupLengthOK(n) {
			return -1
		}
		return n
	case len(b) < headerLen:
		return headerLen
	}
	n := int(int32(binary.BigEndian.Uint32(b[1:]))) + 1
	if n < headerLen || n > 1+4+maxAuthMessage {
		return -1
	}
	return n
}

// tooLong ends a login whose next message has a length out of bounds.
func (lg *loopLogin) tooLong() {
	if lg.phase == loginStartup {
		lg.fail(errStartupLength)
		return
	}
	lg.fail(lg.authFailed(&auth.ProtocolError{Reason: "invalid authentication message length"}))
}

// handle answers one whole message; false: the login left the loop's
// hands or its messages must wait for an answer first.
func (lg *loopLogin) handle(msg []byte) bool {
	if lg.phase == loginStartup {
		return lg.startup(msg[4:])
	}
	return lg.authStep(msg[0], msg[headerLen:])
}

// startup handles a packet of the startup phase, as negotiate and
// readStartup do on a goroutine: no TLS here, so an SSLRequest and a
// GSSENCRequest are answered 'N' once each.
func (lg *loopLogin) startup(body []byte) bool {
	code := binary.BigEndian.Uint32(body)
	switch code {
	case sslRequestCode, gssEncRequestCode:
		if len(body) != 4 || lg.answered(code) {
			lg.fail(errEncryptionAgain)
			return false
		}
		return lg.write([]byte{'N'})
	case cancelRequestCode:
		var cr pgproto3.CancelRequest
		if err := cr.Decode(body); err != nil {
			lg.fail(malformedStartup(err))
			return false
		}
		// The client waits for nothing but the close: forwarding it is a
		// round trip to PostgreSQL, on a goroutine, which never reads the
		// client.
		s, ctx := lg.s, lg.ctx
		lg.forget()
		lg.l.courier.spawn(func() {
			s.srv.forwardCancel(ctx, &cr)
			s.end(nil)
		})
		return false
	}
	m, npv, err := decodeStartupMessage(body)
	if err != nil {
		lg.fail(err)
		return false
	}
	if npv != nil && !lg.send(npv) {
		return false
	}
	params, err := parseStartup(m)
	if err != nil {
		lg.fail(err)
		return false
	}
	s := lg.s
	s.log = s.log.With("user", params.user, "database", params.database)
	lg.params = params
	return lg.startAuth()
}

// answered notes an encryption request; true if one of its kind came
// before.
func (lg *loopLogin) answered(code uint32) bool {
	done := &lg.gssDone
	if code == sslRequestCode {
		done = &lg.sslDone
	}
	seen := *done
	*done = true
	return seen
}

// startAuth sends the first authentication request; a login that is not
// SCRAM (md5) goes to the session goroutine instead.
func (lg *loopLogin) startAuth() bool {
	s, params := lg.s, lg.params
	client, known := s.srv.clients.Load().lookup(params.user)
	lg.known = known
	x, first, ok, err := auth.Start(params.user, client.secrets, s.authOptions())
	switch {
	case err != nil:
		lg.fail(lg.authFailed(err))
		return false
	case !ok:
		ctx := lg.ctx
		lg.toGoroutine(func() {
			s.endUnlessOnLoop(s.serveLogin(ctx, params))
		})
		return false
	}
	s.setState(stateAuth)
	lg.x, lg.phase = x, loginAuth
	return lg.send(first)
}

// authStep passes a client message to the SCRAM exchange and sends its
// answer; at the end, the greeting.
func (lg *loopLogin) authStep(typ byte, body []byte) bool {
	reply, done, err := lg.x.Receive(typ, body)
	if err != nil {
		lg.fail(lg.authFailed(err))
		return false
	}
	if !done {
		return lg.send(reply)
	}
	lg.authenticated(reply)
	return false
}

// authenticated goes on with an authenticated client: on the loop if its
// pool relays there and it can be greeted at once (enter: a
// transaction-mode client, greeted with the server's defaults;
// enterSession: a session-mode client a connection is ready for), else on
// a session goroutine (handOver).
// saslFinal is the exchange's last message, which goes out with the
// greeting.
func (lg *loopLogin) authenticated(saslFinal pgproto3.BackendMessage) {
	p := lg.s.srv.pools[lg.params.database]
	switch {
	case p == nil || !p.relaysOnLoop():
	case p.db.PoolMode == configs.PoolTransaction:
		if defaults := p.serverDefaults(); defaults != nil {
			lg.enter(saslFinal, defaults)
			return
		}
	case lg.enterSession(saslFinal, p):
		return
	}
	lg.handOver(saslFinal)
}

// handOver has a session goroutine serve the authenticated client, which
// stays a pollConn: the loop relays it as it is, with no trip through
// Go's netpoller, and nothing reads it on a goroutine until its greeting.
func (lg *loopLogin) handOver(saslFinal pgproto3.BackendMessage) {
	s, ctx, params := lg.s, lg.ctx, lg.params
	final, err := saslFinal.Encode(nil)
	if err != nil {
		lg.fail(err)
		return
	}
	lg.forget()
	s.pending = final
	s.clientRd.src = s.conn
	s.clientRd.release()
	_ = s.conn.SetDeadline(lg.until)
	lg.l.courier.spawn(func() {
		s.endUnlessOnLoop(s.serveAuthenticated(ctx, params))
	})
}

// authFailed is what the goroutine login makes of a failed exchange.
func (lg *loopLogin) authFailed(err error) error {
	return lg.s.authResult(err, lg.known)
}

// enter greets an authenticated client of a transaction-mode pool with its
// server's defaults, and the client then waits on the loop for its first
// query.
func (lg *loopLogin) enter(saslFinal pgproto3.BackendMessage, defaults reportedParams) {
	s := lg.s
	p, err := s.srv.poolFor(lg.params)
	if err != nil {
		lg.fail(err)
		return
	}
	lg.handOff()
	s.clientRd.src = s.conn
	s.clientRd.shed() // an idle client on the loop holds no buffer
	c := s.joinTxPool(lg.ctx, p, lg.params)
	err = s.enter(lg.greeter(saslFinal, defaults, c.settings))
	if err == nil {
		_, err = s.startTxRound(c, true)
	}
	lg.l.settleHandOff()
	if err != nil {
		lg.l.courier.spawn(func() { s.end(c.finish(err)) })
	}
}

// send writes one authentication request.
func (lg *loopLogin) send(m pgproto3.BackendMessage) bool {
	b, err := m.Encode(nil)
	if err != nil {
		lg.fail(err)
		return false
	}
	return lg.write(b)
}

// write writes b, which the socket takes whole: a login's messages are
// small, and its client reads each before it answers. A socket that takes
// less has a client that does not read; it is let go.
func (lg *loopLogin) write(b []byte) bool {
	if err := lg.writeAll(b); err != nil {
		lg.quit(err)
		return false
	}
	return true
}

func (lg *loopLogin) writeAll(b []byte) error {
	n, err := rawWrite(lg.fd, b)
	switch {
	case err == syscall.EAGAIN:
		return &disconnect{errors.New("writing to the client: its socket is full during login")}
	case err != nil:
		return &disconnect{os.NewSyscallError("write", err)}
	case n < len(b):
		return &disconnect{io.ErrShortWrite}
	}
	return nil
}

// quit ends a login that has nobody to answer: the client left, or sent
// something that is not a startup packet. Nothing is written, so this
// needs no goroutine.
func (lg *loopLogin) quit(err error) {
	lg.forget()
	if lg.phase == loginAuth {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%w: %w", auth.ErrClientClosed, err)
		}
		err = lg.authFailed(err)
	}
	if !isDisconnect(err) {
		err = &disconnect{err}
	}
	lg.s.end(err)
}

// fail ends a login with an error to tell the client: that write, and the
// delay after a wrong password, happen on a goroutine.
func (lg *loopLogin) fail(err error) {
	s := lg.s
	lg.forget()
	lg.l.courier.spawn(func() {
		s.delayFailure(err)
		s.end(err)
	})
}

// toGoroutine takes the login off the loop and runs next on a goroutine
// of its own, which reads the client: with the client's socket back in Go's
// netpoller and what the loop read but did not use in front of it.
func (lg *loopLogin) toGoroutine(next func()) {
	lg.forget()
	s, until := lg.s, lg.until
	rd := s.clientRd
	rest := bytes.Clone(rd.buf[rd.start:rd.end])
	rd.start, rd.end = 0, 0
	rd.release()
	lg.l.courier.spawn(func() {
		if err := s.leaveLoop(rest, until); err != nil {
			s.end(err)
			return
		}
		next()
	})
}

// leaveLoop puts the client's socket back in Go's netpoller for a session
// goroutine, and gives it a pgproto3 Backend that reads rest first.
func (s *session) leaveLoop(rest []byte, until time.Time) error {
	if err := s.toNetpoller(); err != nil {
		return err
	}
	_ = s.conn.SetDeadline(until)
	s.be = newStartupBackend(io.MultiReader(bytes.NewReader(rest), s.conn), s.conn)
	return nil
}

// expireLogins ends the logins past limits.auth_timeout, as the deadline of
// a goroutine login does. Loop goroutine only.
func (l *eventLoop) expireLogins(now time.Time) {
	for _, lg := range l.logins.items {
		if lg == nil || now.Before(lg.until) {
			continue
		}
		if lg.phase == loginStartup {
			lg.quit(errors.New("reading startup packet: timeout"))
			continue
		}
		lg.quit(fmt.Errorf("authentication timeout: %w", os.ErrDeadlineExceeded))
	}
}
