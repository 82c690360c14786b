package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

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
	db    *configs.Database
	up    *Upstream
	creds Credentials
	res   *puddle.Pool[*serverConn]
	log   *slog.Logger
}

func newPool(db *configs.Database, up *Upstream, creds Credentials, log *slog.Logger) (*pool, error) {
	p := &pool{db: db, up: up, creds: creds, log: log.With("database", db.Name)}
	res, err := puddle.NewPool(&puddle.Config[*serverConn]{
		Constructor: p.connect,
		Destructor:  func(sc *serverConn) { sc.close() },
		MaxSize:     int32(db.PoolSize),
	})
	if err != nil {
		return nil, fmt.Errorf("creating pool for %q: %w", db.Name, err)
	}
	p.res = res
	return p, nil
}

// connect is the pool's constructor: a new server connection with the current
// generation's credential.
func (p *pool) connect(ctx context.Context) (*serverConn, error) {
	gen, ok := p.creds.Current()
	if !ok {
		return nil, errNoCredential
	}
	sc, err := dialServer(ctx, p.up, gen)
	if err != nil {
		p.log.Error("server connection failed", "role", gen.Cred.Username, "generation", gen.N, "err", err)
		return nil, err
	}
	p.log.Debug("server connection opened", "role", gen.Cred.Username, "generation", gen.N, "pid", sc.pid)
	return sc, nil
}

// lease is a server connection taken from the pool.
type lease = puddle.Resource[*serverConn]

// acquire returns a server connection of the current generation, waiting in
// line (puddle's queue is FIFO) while the pool is full.
func (p *pool) acquire(ctx context.Context) (*lease, error) {
	for {
		l, err := p.res.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		if !p.stale(l.Value()) {
			return l, nil
		}
		l.Destroy()
	}
}

// stale reports whether sc logged in with a generation older than the current.
func (p *pool) stale(sc *serverConn) bool {
	gen, ok := p.creds.Current()
	return ok && sc.gen.N < gen.N
}

// release gives l back: reset for the next client when reusable, closed
// otherwise. A failed reset closes the connection rather than risk handing
// another client a session with leftover state.
func (p *pool) release(l *lease, reusable bool) {
	sc := l.Value()
	if !reusable || p.stale(sc) {
		l.Destroy()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sc.exec(ctx, "DISCARD ALL"); err != nil || sc.txStatus != 'I' {
		p.log.Warn("server connection reset failed; closing it", "pid", sc.pid, "err", err)
		l.Destroy()
		return
	}
	l.Release()
}

// stats counts connections for /status.
func (p *pool) stats() *puddle.Stat { return p.res.Stat() }

// close closes every connection.
func (p *pool) close() { p.res.Close() }
