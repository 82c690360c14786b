package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/puddle/v2"

	"github.com/pgrotate/pgrotate/configs"
	"github.com/pgrotate/pgrotate/rotation"
)

// errNoCredential means no credential of the database has been validated yet.
var errNoCredential = errors.New("no validated credential")

// Credentials hands out the current executing-role credential of a database.
// rotation.Manager implements it.
type Credentials interface {
	Current() (rotation.Generation, bool)
}

// pool holds the server connections of one database. Every connection is
// stamped with the credential generation it logged in with; a connection of an
// older generation is never handed out again.
type pool struct {
	db      *configs.Database
	up      *Upstream
	creds   Credentials
	res     *puddle.Pool[*serverConn]
	conns   *connSet
	clients atomic.Int64 // client sessions of this database
	guard   *roleGuard
	stmts   *stmtRegistry
	m       *dbMetrics
	// defaults are the parameters a fresh server session reports, from the
	// newest connection; transaction-mode clients are greeted with them.
	defaults atomic.Pointer[reportedParams]
	log      *slog.Logger
	// failures thins the log of failed logins to the server (failLog),
	// idleLost that of idle connections found dead (lostIdle).
	failures failLog
	idleLost failLog
	// roleUser names the database that still uses a role, "" if none
	// (Server.roleUser).
	roleUser func(role string) string
	// onAuthFailure is told when PostgreSQL refuses the current credential,
	// so the credential source is re-read at once (see connect).
	onAuthFailure func()
	// onLoop: the event loop relays this pool's clients. Its plaintext
	// server connections are then kept out of Go's netpoller (pollConn);
	// loopable says whether the newest one was.
	onLoop   bool
	loopable atomic.Bool
	// Clients the event loop keeps waiting for a connection of this pool,
	// in arrival order (loop goroutine only; see txRelay.wait), and how
	// many, for the goroutines that release connections. goWaiters counts
	// the goroutines blocked in acquire; while both kinds wait, connections
	// released, on the loop or on goroutines, go to each in turn
	// (goTurns; see handOff and shareRelease).
	loopWaiters []*txRelay
	loopWaiting atomic.Int32
	goWaiters   atomic.Int32
	goTurns     atomic.Uint32 // releases while both kinds wait: odd ones go to goroutines
	evloop      atomic.Pointer[eventLoop]
	// lastLoginFailure is the last passing login failure of a waiting
	// client (see acquireRetrying), nil once a login succeeds: a client
	// that waited on the loop while logins failed is told that failure,
	// not that the pool stayed busy.
	lastLoginFailure atomic.Pointer[loginFailure]
	// loginTurn: a waiting client is trying a login while they fail, and
	// loginBackoff (ns) is how long it rests after a failure (see
	// acquireRetrying).
	loginTurn    atomic.Bool
	loginBackoff atomic.Int64
	// loopIdle keeps the connections released on the event loop for its
	// next transactions, newest last, without going back to puddle (see
	// loopidle_linux.go); puddle counts them as acquired. Loop goroutine
	// only, but for loopKeeps, which tells other goroutines whether there
	// are any to reclaim (reclaimLoopIdle). loopIdleListed: the loop knows
	// the pool (eventLoop.idlePools).
	loopIdle       []*lease
	loopKeeps      atomic.Bool
	loopIdleListed bool
	// replacing is the generation a replacer moves the pool to (0: none
	// runs); retireQuota counts old connections whose replacement is open,
	// to close at their next release (see replace.go).
	replacing   atomic.Uint64
	retireQuota atomic.Int32
}

// wakeLoopWaiters asks the event loop to hand an idle connection to the
// clients it keeps waiting, after a connection was released or closed
// outside the loop.
func (p *pool) wakeLoopWaiters() {
	if p.loopWaiting.Load() == 0 {
		return
	}
	if l := p.evloop.Load(); l != nil {
		l.post(p.serveLoopWaiters)
	}
}

func newPool(db *configs.Database, up *Upstream, creds Credentials, log *slog.Logger, m *dbMetrics) (*pool, error) {
	p := &pool{
		db: db, up: up, creds: creds, conns: newConnSet(),
		guard: newRoleGuard(db.OwnerRole), stmts: newStmtRegistry(), m: m,
		log: log.With("database", db.Name),
	}
	res, err := puddle.NewPool(&puddle.Config[*serverConn]{
		Constructor: p.connect,
		Destructor:  p.destroy,
		MaxSize:     int32(db.PoolSize),
	})
	if err != nil {
		return nil, fmt.Errorf("creating pool for %q: %w", db.Name, err)
	}
	p.res = res
	p.roleUser = func(role string) string { // alone; a Server knows its other pools
		if p.usesRole(role) {
			return db.Name
		}
		return ""
	}
	return p, nil
}

// connect is the pool's constructor: a new server connection with the current
// generation's credential.
func (p *pool) connect(ctx context.Context) (*serverConn, error) {
	if ctx == idleOnly {
		return nil, errIdleOnly
	}
	gen, ok := p.creds.Current()
	if !ok {
		return nil, errNoCredential
	}
	sc, err := p.dial(ctx, gen)
	if err != nil && isAuthFailure(err) {
		// A password changed in the database before the new one reached the
		// credential source (Vault static roles, AWS single-user rotation).
		// Re-read the source and give the new credential a moment.
		if next, ok := p.awaitNewerGeneration(ctx, gen); ok {
			gen = next
			sc, err = p.dial(ctx, gen)
		}
	}
	if err != nil {
		level, failed := slog.LevelDebug, 0
		if ctx.Err() == nil { // else the client that wanted it gave up or left
			if failed = p.failures.add(time.Now()); failed > 0 {
				level = slog.LevelError
			}
		}
		p.log.Log(ctx, level, "server connection failed", "role", gen.Cred.Username, "generation", gen.N,
			"failures_since_last_logged", failed, "err", err)
		return nil, err
	}
	p.failures.reset()
	p.loginsWork()
	if p.onLoop {
		sc.conn = toPollConn(sc.conn)
		sc.rd.src = sc.conn
		_, ok := loopFD(sc.conn)
		p.loopable.Store(ok)
	}
	sc.lifetime = jitteredLifetime(p.db.ServerLifetime.Duration)
	defaults := sortedParams(sc.params)
	p.defaults.Store(&defaults)
	p.log.Debug("server connection opened", "role", gen.Cred.Username, "generation", gen.N, "pid", sc.pid)
	return sc, nil
}

// authFailureWait bounds how long a new server connection waits for a fresh
// credential after PostgreSQL refused the current one.
const authFailureWait = 5 * time.Second

// awaitNewerGeneration asks for the credential source to be re-read and
// waits until a generation newer than gen is promoted.
func (p *pool) awaitNewerGeneration(ctx context.Context, gen rotation.Generation) (rotation.Generation, bool) {
	if p.onAuthFailure != nil {
		p.onAuthFailure()
	}
	ctx, cancel := context.WithTimeout(ctx, authFailureWait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if next, ok := p.creds.Current(); ok && next.N > gen.N {
			return next, true
		}
		select {
		case <-ctx.Done():
			return gen, false
		case <-tick.C:
		}
	}
}

// isAuthFailure reports whether PostgreSQL refused the credential itself.
func isAuthFailure(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000")
}

// destroy is the pool's destructor. When the last connection of a past
// generation closes, pgrotate no longer uses that credential: say so.
func (p *pool) destroy(sc *serverConn) {
	sc.close()
	defer p.wakeLoopWaiters() // the pool may open a new one for them
	left := p.conns.remove(sc)
	if left == 0 && sc.gen.N < p.currentGen() {
		p.reportDrained(sc.gen)
	}
}

// dial opens a server connection of generation gen and counts it in the
// pool's connections (conns). While the login runs, the generation counts
// as in use: a promotion meanwhile must not report its role retirable. A
// failed login that was the generation's last use reports it drained.
func (p *pool) dial(ctx context.Context, gen rotation.Generation) (*serverConn, error) {
	p.conns.dialStart(gen)
	sc, err := dialServer(ctx, p.up, gen)
	if left := p.conns.dialEnd(gen.N, sc); left == 0 && gen.N < p.currentGen() {
		p.reportDrained(gen)
	}
	return sc, err
}

// usesRole reports whether the pool uses role: as its current credential's
// or through a server connection.
func (p *pool) usesRole(role string) bool {
	gen, ok := p.creds.Current()
	return ok && gen.Cred.Username == role || p.conns.usesRole(role)
}

// reportDrained logs that past generation g has no server connection left,
// and whether its role may now be retired: not while any database of this
// pgrotate uses it (roleUser).
func (p *pool) reportDrained(g rotation.Generation) {
	role := g.Cred.Username
	if db := p.roleUser(role); db != "" {
		p.log.Info("generation drained: no server connection left; its role is still in use",
			"role", role, "generation", g.N, "safe_to_retire", false, "used_by_database", db)
		return
	}
	p.log.Info("generation drained: no server connection left; the old credential is no longer used",
		"role", role, "generation", g.N, "safe_to_retire", true)
}

// relaysOnLoop reports whether the event loop can relay this pool's
// transactions: it relays the pool, and its newest server connection is a
// plain socket (not upstream TLS).
func (p *pool) relaysOnLoop() bool { return p.onLoop && p.loopable.Load() }

// serverDefaults returns the parameters of a fresh server session, or nil
// before the first connection. They are shared: never change them.
func (p *pool) serverDefaults() reportedParams {
	if d := p.defaults.Load(); d != nil {
		return *d
	}
	return nil
}

// currentGen is the current generation's number, 0 before the first.
func (p *pool) currentGen() uint64 {
	gen, _ := p.creds.Current()
	return gen.N
}

// lease is a server connection taken from the pool.
type lease = puddle.Resource[*serverConn]

// acquire returns a server connection of the current generation, waiting in
// line (puddle's queue is FIFO) while the pool is full.
func (p *pool) acquire(ctx context.Context) (*lease, error) {
	return p.take(func() (*lease, error) { return p.res.Acquire(ctx) })
}

// take gets connections from get until one is usable, closing the others.
//
// Session mode while a replacer runs: the idle connections of the old
// generation are the replacer's to close, one per step. Closing every one
// the search meets instead ended dozens of backends in a fraction of a
// second, and PostgreSQL stalled (bench/run.sh: a second at 1 % of the
// throughput after a swap, with 48 idle old connections). So they are set
// aside while the search goes on, and given back after; only when the pool
// is full is one closed, to make room for a new connection.
func (p *pool) take(get func() (*lease, error)) (*lease, error) {
	var aside []*lease
	defer func() {
		for _, l := range aside {
			l.ReleaseUnused()
		}
	}()
	for {
		l, err := get()
		if err != nil {
			return nil, err
		}
		if p.usable(l) {
			l.Value().state.Store(int32(connLeased))
			return l, nil
		}
		if p.keepForReplacer(l) {
			aside = append(aside, l)
			continue
		}
		l.Destroy()
	}
}

// keepForReplacer reports whether take should set an unusable connection
// aside: an old one left to the replacer (session mode never hands one
// out; in transaction mode an unusable old one is retiring), while the
// pool has room for a new connection without closing it.
func (p *pool) keepForReplacer(l *lease) bool {
	return p.db.PoolMode == configs.PoolSession && p.leftToReplacer(l.Value()) && !p.full()
}

// replace trades old, a connection of a past generation, for one of the
// current generation. An idle current connection is taken at once; otherwise
// old is closed first, so that a pool full of old connections still makes
// room.
func (p *pool) replace(ctx context.Context, old *lease) (*lease, error) {
	// Background: puddle builds a missing connection with this context after
	// TryAcquire returns; a context ending with the move would waste that login.
	nl, err := p.res.TryAcquire(context.Background())
	if err == nil && !p.stale(nl.Value()) && p.usable(nl) {
		nl.Value().state.Store(int32(connLeased))
		old.Destroy()
		return nl, nil
	}
	if err == nil {
		nl.Destroy()
	}
	old.Destroy()
	// The client did nothing wrong and its old connection is gone.
	nl, err = p.acquireRetrying(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquiring a server connection of the new generation: %w", err)
	}
	return nl, nil
}

// tryAcquire returns an idle connection of the current generation if one is
// free right now, else nil.
func (p *pool) tryAcquire() *lease {
	l, _ := p.take(func() (*lease, error) { return p.res.TryAcquire(idleOnly) })
	return l
}

// idleOnly is the context tryAcquire gives puddle's TryAcquire, which
// builds a connection in the background with it when none is idle but the
// pool has room: connect refuses it at once, so nobody logs in for a
// connection nobody waits for. Asking puddle first whether one is idle
// would cost a Stat per transaction, which walks every connection of the
// pool under its lock.
var idleOnly = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// errIdleOnly is connect's answer to idleOnly.
var errIdleOnly = errors.New("only an idle connection was asked for")

// usable reports whether a connection just taken from the pool may be
// handed out: not retiring (see retiring), in session mode reset (the
// replies to release's reset are read here, and a failed reset closes the
// connection), and not closed by the server while idle: after a restart or
// a failover the next client would otherwise get the old server's FATAL,
// on a connection it never used. That costs a system call, paid per login
// in session mode and per transaction by transaction-mode clients on
// goroutines (TLS). The event loop takes its idle connections from a stack
// of its own, which the look at dirty connections covers (see tryIdle),
// and comes here only when that is empty.
func (p *pool) usable(l *lease) bool {
	sc := l.Value()
	if p.retiring(sc) {
		return false
	}
	if p.db.PoolMode != configs.PoolSession {
		return !p.closedWhileIdle(l)
	}
	if err := sc.settle(time.Now().Add(resetTimeout)); err != nil {
		p.resetFailed(sc, err)
		return false
	}
	return !p.closedWhileIdle(l)
}

// cancelAbandoned cancels the statement a client that left was running on
// sc, whose connection is about to be closed. Closing it does not stop the
// backend, which notices its client gone only when it next writes (after
// a long report, perhaps an hour later): meanwhile the pool opens a
// replacement, so PostgreSQL runs more backends than pool_size, and the
// statement keeps its locks. The cancel is asynchronous, on a connection
// of its own; the backend then fails to send the error and exits.
func (p *pool) cancelAbandoned(sc *serverConn) {
	go func() {
		if err := sc.cancel(context.Background()); err != nil {
			p.log.Warn("cancelling the statement of a client that left failed", "pid", sc.pid, "err", err)
		}
	}()
}

// resetFailed logs a session reset that failed, before the connection is
// closed.
func (p *pool) resetFailed(sc *serverConn, err error) {
	p.log.Warn("server connection reset failed; closing it", "pid", sc.pid, "err", err)
}

// closedWhileIdle reports, and logs, whether the server closed a settled
// connection while it was idle in the pool.
func (p *pool) closedWhileIdle(l *lease) bool {
	sc := l.Value()
	if l.IdleDuration() > 0 && closedByServer(sc.conn) {
		p.lostIdle(sc, "the server closed it while idle")
		return true
	}
	return false
}

// lostIdle logs that an idle server connection is closed, and why: one
// line per failLogEvery with how many, since a restart or a failover ends
// every idle connection at once.
func (p *pool) lostIdle(sc *serverConn, why string) {
	if n := p.idleLost.add(time.Now()); n > 0 {
		p.log.Warn("closing idle server connections found unusable", "why", why, "pid", sc.pid,
			"connections_since_last_logged", n)
	}
}

// stale reports whether sc logged in with a generation older than the current.
func (p *pool) stale(sc *serverConn) bool {
	return sc.gen.N < p.currentGen()
}

// release gives l back: reset for the next client when reusable, closed
// otherwise. A failed reset closes the connection rather than risk handing
// another client a session with leftover state.
//
// The reset is DISCARD ALL, and then the client's startup settings (those
// it logged in with and that were applied; nil: none) are applied again,
// in the same write: the next login of the same application (the usual
// case: an application's clients all send the same application_name, …)
// then finds them and its own login makes no round trip for them (see
// session.applySettings), where it used to wait for one. release does not
// wait for the replies: the connection's next user reads them (usable).
func (p *pool) release(l *lease, reusable bool, set *startupSettings) {
	sc := l.Value()
	if !reusable || p.stale(sc) || sc.txStatus != 'I' {
		l.Destroy()
		return
	}
	if sc.afterCancels(func() { p.release(l, reusable, set) }) {
		return
	}
	msgs := []pgproto3.FrontendMessage{&pgproto3.Query{String: "DISCARD ALL"}}
	key := ""
	if set != nil && set.sql != "" {
		key = set.key
		// Queries of their own: DISCARD ALL refuses to run in the
		// implicit transaction of a multi-statement query.
		msgs = append(msgs, settingsQueries("", set.sql)...)
	}
	if err := sc.sendReset(msgs, time.Now().Add(resetTimeout)); err != nil {
		p.resetFailed(sc, err)
		l.Destroy()
		return
	}
	sc.appliedKey = key
	sc.goIdle()
	l.Release()
}

// resetTimeout bounds the reset of a session-mode connection (release,
// usable).
const resetTimeout = 5 * time.Second

// releaseTx gives l back after a transaction (transaction pooling): no
// DISCARD ALL, so the next client finds its prepared statements and
// settings; the cleanup the transaction's text called for (see txCleanup)
// otherwise. A connection whose cleanup fails is closed: what it holds
// must not reach another client.
func (p *pool) releaseTx(l *lease, cleanup txCleanup) {
	sc := l.Value()
	if p.retiring(sc) {
		l.Destroy()
		return
	}
	if sc.afterCancels(func() { p.releaseTx(l, cleanup) }) {
		return
	}
	if cleanup != cleanNone {
		p.countCleanup(cleanup)
		ctx, cancel := context.WithTimeout(context.Background(), resetTimeout)
		defer cancel()
		if err := sc.exec(ctx, cleanup.query(sc.evicted)); err != nil || sc.txStatus != 'I' {
			p.log.Warn("cleaning up after a transaction failed; closing the server connection", "pid", sc.pid, "cleanup", cleanup.kinds(), "err", err)
			l.Destroy()
			return
		}
		p.m.evictedStmts.Add(float64(len(sc.evicted)))
		sc.evicted = nil
	}
	sc.goIdle()
	if p.shareRelease(l) {
		return
	}
	l.Release()
	p.wakeLoopWaiters()
}

// countCleanup counts a transaction-mode cleanup by kind.
func (p *pool) countCleanup(k txCleanup) {
	k.each(func(i int) { p.m.cleanups[i].Inc() })
}

// full reports whether the pool holds pool_size connections (or is opening
// them): a client waiting for one can only get one that is released.
func (p *pool) full() bool {
	st := p.res.Stat()
	return st.TotalResources() >= st.MaxResources()
}

// saturated reports whether the pool holds pool_size open connections and
// opens none: the event loop then keeps a client that found none idle
// waiting for one to be released. While one is being opened — possibly an
// idleOnly one about to fail — the pool's room is unknown, and the client
// waits on its goroutine, in puddle's queue, instead.
func (p *pool) saturated() bool {
	st := p.res.Stat()
	return st.ConstructingResources() == 0 && st.TotalResources() >= st.MaxResources()
}

// prewarm opens an idle connection of the current generation.
func (p *pool) prewarm(ctx context.Context, next rotation.Generation) {
	err := p.res.CreateResource(ctx)
	if err != nil && ctx.Err() != nil {
		// A newer rotation took over, or pgrotate is stopping: not a
		// failure of the credential.
		p.log.Debug("pre-warming stopped: the replacement ended (a newer rotation, or shutdown)", "generation", next.N)
		return
	}
	if err != nil && !errors.Is(err, puddle.ErrNotAvailable) {
		p.log.Warn("pre-warming a server connection of the new generation failed", "generation", next.N, "err", err)
	}
}

// close closes every connection; puddle's Close waits for those held,
// which the loop's idle ones would otherwise be.
func (p *pool) close() {
	p.reclaimLoopIdle()
	p.res.Close()
}

// failLogEvery is how often, at most, failed logins to the server are
// logged at ERROR while they go on.
const failLogEvery = 10 * time.Second

// failLog thins the log of a pool's failed logins to the server. While the
// server is down every client waiting for a connection tries again about
// once a second, and a line each at ERROR buried everything else: the
// first failure after a success is logged, then one line per failLogEvery
// with the count; the rest go to debug.
type failLog struct {
	mu      sync.Mutex
	last    time.Time
	pending int // failures since the last one logged
}

// add counts a failure and returns how many to report now (this one and
// those unlogged before it), or 0 when it is not time to log.
func (f *failLog) add(now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending++
	if !f.last.IsZero() && now.Sub(f.last) < failLogEvery {
		return 0
	}
	n := f.pending
	f.last, f.pending = now, 0
	return n
}

// reset starts over after a login that succeeded.
func (f *failLog) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last, f.pending = time.Time{}, 0
}
