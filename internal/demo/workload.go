package demo

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationEvery is how often the migration worker deploys a schema change.
const migrationEvery = 3 * time.Second

// txTimeout bounds one transaction. Transactions are not canceled when the
// demo stops: a worker finishes the one it is in, so stopping never counts
// as a failure.
const txTimeout = 30 * time.Second

// maxRecordedErrors is how many failure messages the summary keeps.
const maxRecordedErrors = 5

// workload is an application using the database through pgrotate: order
// transactions from several workers and a migration now and then.
type workload struct {
	pool *pgxpool.Pool
	stop chan struct{}
	wg   sync.WaitGroup

	committed  atomic.Uint64
	migrations atomic.Uint64
	failed     atomic.Uint64
	mu         sync.Mutex
	errs       []string // the first maxRecordedErrors failures
}

// appURL is the DATABASE_URL the application would be given: pgrotate's
// address and the one stable credential.
func appURL(addr, password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(appUser, password), Host: addr,
		Path: "/" + dbName, RawQuery: "sslmode=disable"}
	return u.String()
}

// newAppPool opens the application's pgx pool. Its connections live for the
// whole demo, as an app's would: pgrotate moves each of them to the new
// executing role at an idle moment, prepared statements and all.
func newAppPool(ctx context.Context, addr, password string, conns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(appURL(addr, password))
	if err != nil {
		return nil, fmt.Errorf("parsing application URL: %w", err)
	}
	cfg.MaxConns = int32(conns)
	cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening application pool: %w", err)
	}
	return pool, nil
}

// schema is the application's own schema, created through pgrotate at the
// start like a first deploy would.
const schema = `
CREATE TABLE demo_orders (
    id         bigserial PRIMARY KEY,
    worker     int NOT NULL,
    amount     numeric(10,2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE demo_counters (worker int PRIMARY KEY, orders bigint NOT NULL DEFAULT 0);
`

// createSchema creates the application tables and one counter row per worker.
func createSchema(ctx context.Context, pool *pgxpool.Pool, clients int) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, schema); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO demo_counters (worker) SELECT generate_series(0, $1::int - 1)", clients)
		return err
	})
}

// startWorkload starts clients transaction workers and the migration worker.
func startWorkload(pool *pgxpool.Pool, clients int) *workload {
	w := &workload{pool: pool, stop: make(chan struct{})}
	for i := range clients {
		w.wg.Go(func() { w.orders(i) })
	}
	w.wg.Go(w.migrate)
	return w
}

// halt stops the workers after their current transaction and closes the pool.
func (w *workload) halt() {
	close(w.stop)
	w.wg.Wait()
	w.pool.Close()
}

func (w *workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// orders is one worker: insert an order, count it, read it back, commit.
func (w *workload) orders(worker int) {
	for !w.stopped() {
		err := w.inTx(func(ctx context.Context, tx pgx.Tx) error {
			var id int64
			amount := fmt.Sprintf("%d.%02d", 1+rand.IntN(99), rand.IntN(100))
			if err := tx.QueryRow(ctx, "INSERT INTO demo_orders (worker, amount) VALUES ($1, $2) RETURNING id", worker, amount).Scan(&id); err != nil {
				return fmt.Errorf("inserting an order: %w", err)
			}
			if _, err := tx.Exec(ctx, "UPDATE demo_counters SET orders = orders + 1 WHERE worker = $1", worker); err != nil {
				return fmt.Errorf("updating a counter: %w", err)
			}
			var got int
			if err := tx.QueryRow(ctx, "SELECT worker FROM demo_orders WHERE id = $1", id).Scan(&got); err != nil {
				return fmt.Errorf("reading an order back: %w", err)
			}
			if got != worker {
				return fmt.Errorf("reading an order back: got worker %d, want %d", got, worker)
			}
			return nil
		})
		if err != nil {
			// Do not spin on a broken proxy: one failure is enough to fail the demo.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		w.committed.Add(1)
	}
}

// migrate deploys a schema change every migrationEvery: a table with a
// sequence, a new column, an index and a function, all of which must end up
// owned by the owner role, not by whichever executing role is current.
func (w *workload) migrate() {
	t := time.NewTicker(migrationEvery)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		err := w.inTx(func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, migrationSQL(n))
			if err != nil {
				return fmt.Errorf("running migration %d: %w", n, err)
			}
			return nil
		})
		if err == nil {
			w.migrations.Add(1)
		}
	}
}

// migrationSQL is the n-th migration.
func migrationSQL(n int) string {
	return fmt.Sprintf(`
CREATE TABLE demo_migration_%[1]d (id bigserial PRIMARY KEY, note text NOT NULL);
ALTER TABLE demo_migration_%[1]d ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX demo_migration_%[1]d_created_at ON demo_migration_%[1]d (created_at);
CREATE FUNCTION demo_migration_%[1]d_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM demo_migration_%[1]d';
`, n)
}

// inTx runs fn in a transaction and counts any error as a failure.
func (w *workload) inTx(fn func(context.Context, pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), txTimeout)
	defer cancel()
	var fnErr error
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		fnErr = fn(ctx, tx)
		return fnErr
	})
	if err != nil {
		// BeginFunc reports a failed rollback ("conn closed") instead of the
		// error that made it roll back; the first error is the one to show.
		w.recordFailure(cmp.Or(fnErr, err))
	}
	return err
}

func (w *workload) recordFailure(err error) {
	w.failed.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) < maxRecordedErrors {
		w.errs = append(w.errs, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
	}
}

// errors returns the recorded failure messages.
func (w *workload) errors() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.errs...)
}
