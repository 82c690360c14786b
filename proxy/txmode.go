package proxy

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"time"
)

// Interest sets of the transaction-mode relay.
var (
	// txFromClient: every client message may need a server connection, so
	// all are seen at least by header; the ones pgrotate rewrites or checks
	// (statement names, role guard, DEALLOCATE) are seen whole.
	txFromClient = func() *typeSet {
		var s typeSet
		for i := range s {
			s[i] = header
		}
		// CopyDone and CopyFail are small; whole, they are never half
		// forwarded (see txClient.streaming).
		for _, t := range []byte{'X', 'S', 'Q', 'P', 'B', 'D', 'C', 'c', 'f'} {
			s[t] = whole
		}
		s['F'] = smallWhole
		return &s
	}()
	// txFromServer: ReadyForQuery ends transactions, ParameterStatus keeps
	// the client's settings, ParseComplete confirms prepared statements,
	// CloseComplete confirms Closes, ErrorResponse may say the connection's
	// statements are stale.
	txFromServer = newTypeSet('Z', 'S', '1', '3', 'E')
)

// unsyncedParams are reported parameters a client cannot set: they are not
// part of the settings pgrotate carries from one server connection to the next.
var unsyncedParams = map[string]bool{
	"server_version": true, "server_encoding": true, "is_superuser": true,
	"session_authorization": true, "integer_datetimes": true, "in_hot_standby": true,
	"scram_iterations": true,
}

// txClient is the transaction-pooling state of one client. The client
// goroutine owns it; while a server connection is leased, a second goroutine
// pumps the server's replies and shares the fields under mu.
type txClient struct {
	s     *session
	p     *pool
	ctx   context.Context
	guard *roleGuard // nil when the role guard is off

	// settings are the client's session settings: its startup parameters
	// and the reported parameters it changed since. settingsKey identifies
	// them, so a server connection that last ran with the same settings
	// needs no round trip.
	settings    map[string]string
	settingsKey string

	// tempPath: the settings' search_path names pg_temp, so every lease
	// may leave temporary tables (see tempInPath), and each gets the
	// session cleanup.
	tempPath bool

	scratch []byte // the rewritten message, owned by the client goroutine
	prefix  []byte // messages sent ahead of it
	// batch holds the named Parses of the current batch that were answered
	// without a server connection (see answerLocally).
	batch []*clientStmt

	// wrote is closed when the server goroutine of the last lease has
	// written its last reply to the client; whoever writes to the client
	// next waits for it, so replies never overtake each other.
	wrote chan struct{}

	// loop is set while the event loop relays the client (txloop.go): a
	// lease is then taken without blocking, or the client is parked.
	loop *txRelay
	// parked is a lease taken on the loop that needs blocking work first
	// (the client's settings applied) by the client goroutine.
	parked *lease
	// loopSerr is how the server direction of the last round on the loop
	// ended, for finish (the loop has no server goroutine to ask).
	loopSerr error

	mu       sync.Mutex
	lease    *lease // held server connection; nil between transactions
	srvDone  chan error
	pending  int  // Query/Sync/FunctionCall sent on the lease, not yet answered
	unsynced bool // extended-protocol messages sent since the last Sync
	status   byte // transaction status of the last ReadyForQuery
	// streaming: the client's last message was a CopyData, which passes
	// through by its header and may still be arriving. Until the client's
	// next message shows it complete, the lease is not idle: a CopyData
	// outside COPY (PostgreSQL ignores it), or one still arriving when the
	// server ended a failed COPY, must not leave half a message on a
	// connection another client gets next.
	streaming bool
	// copyEnds counts the Syncs sent in place of a CopyDone or CopyFail
	// that came after the server had ended the COPY (it failed on a row
	// while the client was still sending): PostgreSQL ignores such a
	// message and answers nothing, so the lease would wait for the client's
	// next message to end, maybe for good. The Sync's ReadyForQuery ends it
	// instead, and is not the client's.
	copyEnds  int
	syncsSent int // ReadyForQuery-earning messages sent on the lease
	syncsDone int // ReadyForQuery received on the lease
	// seen: what the lease's statements mentioned (roles, session state),
	// which decides the connection's cleanup before reuse (see note).
	seen      mentions
	closing   bool // the client is leaving: finish, not the server goroutine, ends the lease
	forgetAll bool // the client ran DEALLOCATE or DISCARD: statements are gone
	// stalePlans: PostgreSQL said a prepared statement's plan no longer
	// fits its tables (noteError). The statements are shared: on this
	// connection every client would get the error, again and again, and a
	// driver's own Close and Parse (pgx, JDBC) would not help. The lease's
	// end deallocates them all; whoever binds them next prepares them anew.
	stalePlans bool
	stmts      map[string]*clientStmt
	parses     []pendingParse // Parses sent on the lease, awaiting ParseComplete
	closes     []pendingClose // Closes sent on the lease, awaiting CloseComplete
	// unnamed is the body of the Parse that made the client's unnamed
	// statement, as sent to the server (empty when it has none), and
	// unnamedHere whether the leased connection's unnamed statement is
	// that one (see onUnnamed).
	unnamed     unnamedStmt
	unnamedHere bool
	// unnamedMentions is what scanText found in the unnamed statement's
	// text: a Bind of it in a later transaction notes it again.
	unnamedMentions mentions
	// unnamedSeg is the segment of the lease (see segment) whose Parse
	// made the leased connection's unnamed statement the client's.
	unnamedSeg int
	// unsure: the lease's statements mentioned DEALLOCATE or DISCARD, so
	// which statements the connection still holds is unknown until the
	// lease ends (see injectParse).
	unsure bool
}

// pendingParse is a Parse sent to the server and not yet confirmed.
type pendingParse struct {
	server string // server-side name; "" for the unnamed statement
	// stmt is the client's named statement the Parse stands for (its own
	// Parse, under the shared name or as the unnamed statement where the
	// connection holds the shared one already); nil for one pgrotate
	// injected.
	stmt     *clientStmt
	injected bool // pgrotate's own: its ParseComplete is not forwarded
	own      bool // the client's own Parse of the unnamed statement
	sync     int  // the ReadyForQuery number that settles it
}

func newTxClient(ctx context.Context, s *session, p *pool, settings map[string]string) *txClient {
	c := &txClient{s: s, p: p, ctx: ctx, stmts: make(map[string]*clientStmt), status: 'I'}
	if p.db.RoleGuardEnabled() {
		c.guard = p.guard
	}
	c.setSettings(settings)
	return c
}

// setSettings makes m the client's settings, with what is derived from
// them: their key, and whether its search_path names pg_temp.
func (c *txClient) setSettings(m map[string]string) {
	c.settings, c.settingsKey, c.tempPath = m, settingsKey(m), tempInPath(m)
}

// tempInPath reports whether the settings' search_path names pg_temp
// (-c search_path=pg_temp,public in the startup options): every table
// such a client creates without a schema is temporary, though no
// statement of it says so, and outlives the transaction in the server
// session the next client gets.
func tempInPath(settings map[string]string) bool {
	return strings.Contains(strings.ToLower(settings["search_path"]), "pg_temp")
}

// settingsKey renders settings in a stable order.
func settingsKey(m map[string]string) string {
	n := 0
	for k, v := range m {
		n += len(k) + len(v) + 2
	}
	var b strings.Builder
	b.Grow(n) // one allocation, not one per doubling
	for _, k := range sortedKeys(m) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	return b.String()
}

// serveTransactions serves a client in transaction pooling: a server
// connection per transaction, released at ReadyForQuery 'I'.
func (s *session) serveTransactions(ctx context.Context, p *pool, params *startupParams) error {
	c := s.joinTxPool(ctx, p, params)
	defaults, err := c.greetParams()
	if err != nil {
		return err
	}
	if err := s.enter(func() error { return s.greetWith(defaults, c.settings) }); err != nil {
		return err
	}
	return s.serveTxRounds(c, s.detachForLoop(p), nil)
}

// joinTxPool makes the authenticated client one of p's clients.
func (s *session) joinTxPool(ctx context.Context, p *pool, params *startupParams) *txClient {
	s.setState(stateConnecting)
	p.clients.Add(1)
	s.atEnd = append(s.atEnd, func() { p.clients.Add(-1) })
	s.txMode = true
	return newTxClient(ctx, s, p, params.settings)
}

// enter gives the client its cancel key and greets it (greet); from there
// it runs queries.
func (s *session) enter(greet func() error) error {
	s.key = s.srv.cancels.register(s)
	s.atEnd = append(s.atEnd, func() { s.srv.cancels.unregister(s.key) })
	if s.srv.isDraining() { // Shutdown began before it could kick us
		return shutdownError()
	}
	if err := greet(); err != nil {
		return &disconnect{err}
	}
	s.setState(stateActive)
	s.atEnd = append(s.atEnd, s.stopRetry)
	return nil
}

// serveTxRounds relays the client's transactions until it leaves: on the
// event loop if onLoop, else on goroutines. ended is the round on the loop
// that a resumed session carries on from (see resumeTx), nil otherwise.
// errOnLoop means that the loop holds the client now and this goroutine is
// done with it.
func (s *session) serveTxRounds(c *txClient, onLoop bool, ended *roundEnded) error {
	for {
		var cerr error
		if onLoop {
			var fellBack bool
			cerr, fellBack = s.txOnLoop(c, ended)
			ended = nil
			if errors.Is(cerr, errOnLoop) {
				return cerr
			}
			if fellBack {
				onLoop = false
				continue
			}
		} else {
			cerr = s.clientRd.pump(c, txFromClient, c)
		}
		if !(isDeadline(cerr) && s.kicked.Load() && s.srv.isDraining()) {
			return c.finish(cerr)
		}
		// Shutdown: leave now if no transaction is open, else after it.
		s.kicked.Store(false)
		if !c.leaseHeld() {
			return c.finish(shutdownError())
		}
		_ = s.conn.SetReadDeadline(time.Time{})
		s.scheduleRetry(shutdownRetry)
	}
}

// leaseHeld reports whether the client is inside a transaction.
func (c *txClient) leaseHeld() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lease != nil
}

// greetParams are the server's defaults, which the client is greeted with,
// its own settings laid over them (see queueGreeting). Logging in needs no
// server connection, as with PgBouncer: a client must be able to log in while
// every server connection is held by other clients' transactions (an app
// that opens its connections one by one would otherwise deadlock itself).
// The settings are applied, and so checked, with the first transaction. Only
// before the pool ever connected is a connection leased to learn them.
func (c *txClient) greetParams() (reportedParams, error) {
	defaults := c.p.serverDefaults()
	if defaults == nil {
		l, err := c.lease1()
		if err != nil {
			return nil, err
		}
		defaults = sortedParams(l.Value().params)
		c.p.releaseTx(l, cleanNone)
	}
	return defaults, nil
}

// lease1 leases a server connection and brings it to the client's settings.
func (c *txClient) lease1() (*lease, error) {
	c.s.waitStart.Store(time.Now().UnixNano())
	l, err := c.s.acquire(c.ctx, c.p)
	if err == nil {
		err = c.applySettings(l)
	}
	if err != nil {
		c.s.waitStart.Store(0)
		return nil, err
	}
	return l, nil
}

// applySettings brings a leased connection to the client's settings; if
// that fails, the lease is given back. It resets the role too, in the same
// round trip: the statements that make a connection's settings unknown
// (SET, RESET, set_config, DO) may also have changed the role in ways the
// role guard cannot read (a setting name bound as a parameter, or built
// at run time).
func (c *txClient) applySettings(l *lease) error {
	sc := l.Value()
	if sc.appliedKey == c.settingsKey {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	// Its Queries may fail after the first reset the session: whatever
	// happens, the connection holds settings of its own until they all ran.
	sc.appliedKey = unknownSettings
	if err := sc.roundTrip(ctx, settingsQueries("RESET ROLE; RESET ALL", setConfigSQL(c.settings)), nil); err != nil {
		c.p.releaseTx(l, cleanNone)
		return refusedSetting(err, "applying client settings")
	}
	sc.appliedKey = c.settingsKey
	return nil
}

// Write sends client bytes to the leased server connection. The relay calls
// it only after inspect made sure a lease is held.
func (c *txClient) Write(b []byte) (int, error) {
	c.mu.Lock()
	l := c.lease
	c.mu.Unlock()
	if l == nil {
		return 0, errors.New("no server connection leased")
	}
	return l.Value().conn.Write(b)
}

// inspect handles one client message: it leases a server connection for the
// first message of a transaction and rewrites what must be rewritten.
func (c *txClient) inspect(typ byte, body []byte) (verdict, error) {
	if typ == 'X' {
		return dropStop, nil
	}
	// Inside a transaction the lease is held and nothing waits to be sent
	// first: route at once, under one lock. (answerLocally and ensureLease
	// would each take the lock only to find the lease held: 7 of the 17
	// lock/unlock pairs of a pgbench -M extended statement, when locking was
	// half the inspectors' time; BenchmarkTxStatement.)
	c.mu.Lock()
	if c.lease != nil && len(c.batch) == 0 {
		defer c.mu.Unlock()
		return c.route(typ, body)
	}
	c.mu.Unlock()
	if v, done, err := c.answerLocally(typ, body); done {
		return v, err
	}
	if err := c.ensureLease(); err != nil {
		return forward, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.batch) == 0 {
		return c.route(typ, body)
	}
	// Parses answered locally must reach the server before this message.
	c.prefix = c.sendBatch(c.prefix[:0])
	v, err := c.route(typ, body)
	if v == forward {
		c.scratch = appendMessage(c.scratch[:0], typ, body)
	}
	c.prefix = append(c.prefix, c.scratch...)
	c.scratch, c.prefix = c.prefix, c.scratch
	return rewrite, err
}

// route handles a client message on the leased connection. Called with mu
// held.
func (c *txClient) route(typ byte, body []byte) (verdict, error) {
	c.streaming = typ == 'd'
	switch typ {
	case 'Q', 'F':
		c.pending++
		c.syncsSent++
		c.p.m.queries.Inc()
		if typ == 'Q' {
			c.unsynced = false // a Query ends the implicit transaction too
			return c.onQuery(body), nil
		}
		return c.onCall(body), nil
	case 'S':
		c.pending++
		c.syncsSent++
		c.unsynced = false
		c.p.m.queries.Inc()
	case 'P':
		c.unsynced = true
		return c.onParse(body)
	case 'B':
		c.unsynced = true
		return c.onBind(body)
	case 'D':
		c.unsynced = true
		return c.onDescribeOrClose(typ, body)
	case 'C':
		c.unsynced = true
		c.closes = append(c.closes, pendingClose{sync: c.segment()})
		return c.onDescribeOrClose(typ, body)
	case 'E', 'H':
		c.unsynced = true
	case 'c', 'f':
		if c.pending == 0 && !c.unsynced { // no COPY runs: see copyEnds
			c.pending++
			c.syncsSent++
			c.copyEnds++
			c.scratch = appendMessage(c.scratch[:0], 'S')
			return rewrite, nil
		}
	}
	return forward, nil
}

// replacement is the message that replaces the one just inspected.
func (c *txClient) replacement() []byte { return c.scratch }

// ensureLease leases a server connection if none is held.
func (c *txClient) ensureLease() error {
	c.mu.Lock()
	held := c.lease != nil
	c.mu.Unlock()
	if held {
		return nil
	}
	if c.loop != nil {
		return c.loop.lease()
	}
	l, err := c.lease1()
	if err != nil {
		return err
	}
	c.relayOnGoroutine(l)
	return nil
}

// relayOnGoroutine starts the lease's server goroutine, which forwards the
// server's replies to the client.
func (c *txClient) relayOnGoroutine(l *lease) {
	c.awaitWrites()
	done, wrote := make(chan error, 1), make(chan struct{})
	c.wrote = wrote
	c.beginLease(l, done)
	go c.serverLoop(l, done, wrote)
}

// beginLease makes l the client's lease for a new transaction.
func (c *txClient) beginLease(l *lease, srvDone chan error) {
	c.mu.Lock()
	c.lease, c.srvDone = l, srvDone
	c.pending, c.unsynced, c.syncsSent, c.syncsDone, c.streaming, c.copyEnds = 0, false, 0, 0, false, 0
	c.seen, c.forgetAll, c.stalePlans, c.parses, c.closes = mentions{}, false, false, c.parses[:0], c.closes[:0]
	c.unnamedHere, c.unsure = false, false
	c.mu.Unlock()
	c.s.server.Store(l.Value())
	if c.s.waitStart.Load() != 0 {
		c.cancelAfterWait(l.Value())
	}
}

// cancelAfterWait forwards to sc a cancel that came while the client
// waited for it: the statement it was meant for is about to run there.
// The cancel travels on a new connection, well after the statement, which
// is written right after this. Without it the statement ran in full
// (JDBC's setQueryTimeout, psql's Ctrl-C).
func (c *txClient) cancelAfterWait(sc *serverConn) {
	start := c.s.waitStart.Swap(0)
	if at := c.s.cancelAt.Swap(0); start != 0 && at >= start {
		go c.s.srv.cancelOn(c.ctx, c.s, sc)
	}
}

// awaitWrites waits until the last lease's replies are all written.
func (c *txClient) awaitWrites() {
	if c.wrote != nil {
		<-c.wrote
	}
}

// serverLoop forwards the server's replies of one lease. It returns the
// connection to the pool when the transaction ends; on any other end it
// leaves the lease to the client goroutine (finish).
func (c *txClient) serverLoop(l *lease, done chan<- error, wrote chan<- struct{}) {
	sc := l.Value()
	err := sc.rd.pump(c.s.conn, txFromServer, txServerInspector{c: c, sc: sc})
	close(wrote)
	c.mu.Lock()
	// Ended: endLease let go of this lease (the client may hold a new one
	// already); otherwise finish decides what becomes of it.
	ended := c.lease != l
	c.mu.Unlock()
	switch {
	case ended && err == nil:
		c.p.releaseTx(l, sc.cleanup)
		if c.s.srv.isDraining() {
			c.s.kick() // the transaction is over: time to leave
		}
	case ended && isWriteErr(err):
		// The ReadyForQuery that ended the lease did not reach a client
		// that left: finish, which sees no lease, would leave the
		// connection nobody's. Closed, as on the loop (leaseEndedUnpassed).
		l.Destroy()
	}
	if err != nil && !isDeadline(err) {
		// The server or the client failed: stop the client direction too.
		_ = c.s.conn.SetReadDeadline(time.Now())
	}
	done <- err
}

// txServerInspector watches one lease's server replies.
type txServerInspector struct {
	c  *txClient
	sc *serverConn
}

func (i txServerInspector) inspect(typ byte, body []byte) (verdict, error) {
	i.c.mu.Lock()
	defer i.c.mu.Unlock()
	return i.inspectHeld(typ, body)
}

// inspectHeld is inspect with mu held, or on the event loop (see
// loopClient).
func (i txServerInspector) inspectHeld(typ byte, body []byte) (verdict, error) {
	c := i.c
	switch typ {
	case 'S':
		i.sc.noteParameter(body)
		c.noteParameter(body)
	case '1':
		if len(c.parses) > 0 {
			if p := c.popParse(); p.injected {
				return dropContinue, nil
			}
		}
	case '3':
		c.closed()
	case 'E':
		c.noteError(i.sc, body)
	case 'Z':
		c.status = readyStatus(body)
		c.pending--
		c.syncsDone++
		c.settleParses(i.sc)
		c.settleCloses()
		// With no request before it unanswered, a copyEnds Sync's
		// ReadyForQuery is the next one.
		copyEnd := c.copyEnds > 0
		if copyEnd {
			c.copyEnds--
		} else if c.status == 'I' {
			c.p.m.transactions.Inc()
		}
		if c.idle() {
			if !c.closing {
				c.endLease(i.sc)
			}
			return stopVerdict(copyEnd), nil
		}
		if copyEnd {
			return dropContinue, nil
		}
	}
	return forward, nil
}

// stopVerdict passes on the ReadyForQuery that ends a lease, unless it is
// pgrotate's own (copyEnds).
func stopVerdict(own bool) verdict {
	if own {
		return dropStop
	}
	return forwardStop
}

// idle reports whether the lease's transaction is over: every request
// answered, outside a transaction block, and no client message half sent.
// Called with mu held.
func (c *txClient) idle() bool {
	return c.pending == 0 && !c.unsynced && c.status == 'I' && !c.streaming
}

// endLease records what the server connection now holds, as its lease ends
// at an idle ReadyForQuery or with the client leaving (finish). Called with
// mu held.
func (c *txClient) endLease(sc *serverConn) {
	sc.cleanup = c.cleanup()
	switch {
	case c.forgetAll || c.stalePlans:
		// The connection's statements and settings are gone. The
		// client's own stay registered: one it uses again is prepared
		// again, so a statement whose words only look like DEALLOCATE or
		// DISCARD (in a string) costs a Parse, not the client's cache.
		sc.stmts.forgetAll()
		sc.appliedKey = unknownSettings
	case c.seen.settings:
		// A SET of a parameter PostgreSQL does not report (statement_timeout)
		// would otherwise stay for whoever gets the connection next: the
		// next lease resets the session's settings and applies its own.
		sc.appliedKey = unknownSettings
	default:
		sc.appliedKey = c.settingsKey
	}
	if evicted := sc.stmts.evict(c.p.db.MaxPreparedStatements); len(evicted) > 0 {
		sc.evicted = evicted
		sc.cleanup |= cleanEvict
	}
	c.lease = nil
	c.s.server.Store(nil)
}

// popParse removes the oldest pending Parse and returns it. The rest move
// down instead of the slice moving up, so the queue keeps its array: a
// queue that only moved forward needed a new one every few Parses (1
// allocation per statement in BenchmarkTxStatement/extended, seen as
// growslice under onParse in perf).
func (c *txClient) popParse() pendingParse {
	p := c.parses[0]
	c.parses = dropFront(c.parses, 1)
	return p
}

// dropFront drops the first n items of queue q: the rest move down,
// keeping the array (see popParse), and the places they leave are zeroed,
// holding no pointers.
func dropFront[T any](q []T, n int) []T {
	m := copy(q, q[n:])
	clear(q[m:])
	return q[:m]
}

// settleParses forgets the Parses that a ReadyForQuery proved failed: the
// server skipped or refused them. Called with mu held.
func (c *txClient) settleParses(sc *serverConn) {
	for len(c.parses) > 0 && c.parses[0].sync <= c.syncsDone {
		p := c.popParse()
		if p.stmt != nil && c.stmts[p.stmt.name] == p.stmt {
			delete(c.stmts, p.stmt.name) // as on PostgreSQL: a Bind of it fails
		}
		if p.server == "" && p.sync == c.unnamedSeg {
			// The unnamed statement it was to make is not there: the
			// connection holds none, or whichever it held before.
			c.unnamedHere = false
			if p.own {
				c.unnamed.drop() // as PostgreSQL drops it at a Parse that fails
			}
			continue
		}
		sc.stmts.forget(p.server)
	}
}

// noteParameter keeps the client's settings current. Called with mu held.
func (c *txClient) noteParameter(body []byte) {
	name, value, ok := parameterStatus(body)
	if !ok || unsyncedParams[string(name)] || c.settings[string(name)] == string(value) {
		return
	}
	m := maps.Clone(c.settings)
	m[string(name)] = string(value)
	c.setSettings(m)
}

// finish ends the session: the client left or a side failed. A lease still
// held is given back if the server is idle, closed otherwise.
func (c *txClient) finish(cerr error) error {
	c.mu.Lock()
	c.closing = true // from here on the server goroutine leaves the lease to us
	l, done := c.lease, c.srvDone
	c.mu.Unlock()
	if l == nil {
		return c.clientErr(cerr)
	}
	sc := l.Value()
	serr := c.loopSerr
	if done != nil {
		_ = sc.conn.SetReadDeadline(time.Now())
		serr = <-done
		_ = sc.conn.SetReadDeadline(time.Time{})
	}
	c.mu.Lock()
	idle := c.idle() && !c.s.clientRd.midMessage()
	running := c.pending > 0
	c.endLease(sc) // what the connection holds, as if the transaction had ended first
	c.mu.Unlock()
	if serr != nil && !isDeadline(serr) && !isWriteErr(serr) {
		l.Destroy()
		return c.s.serverLost(sc, serr)
	}
	switch {
	case idle && sc.rd.atBoundary():
		c.p.releaseTx(l, sc.cleanup)
	case running:
		c.p.cancelAbandoned(sc) // then closed, as below
		fallthrough
	default:
		l.Destroy()
	}
	return c.clientErr(cerr)
}

func (c *txClient) clientErr(cerr error) error {
	switch {
	case cerr == nil:
		return nil
	case errors.Is(cerr, errFrameLength):
		return withCause(fatal(codeProtocolViolation, "invalid frontend message length"), cerr)
	case isWriteErr(cerr):
		return withCause(fatal(codeConnectionFailure, "lost the server connection"), cerr)
	default:
		var we *WireError
		if errors.As(cerr, &we) || !isDisconnect(cerr) && !isDeadline(cerr) {
			return cerr
		}
		return asDisconnect(cerr)
	}
}
