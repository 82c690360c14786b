package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Shutdown under load finishes the transactions in flight and loses none:
// every transaction that began commits, and each client is then told 57P01
// before its next one.
func TestGracefulShutdownLosesNoTransaction(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: mode, poolSize: 8})
			table := "shutdown_" + mode
			c := env.connect(t)
			_, err := c.Exec(ctxT(t), "CREATE TABLE "+table+" (worker int, n int)")
			must(t, err)
			t.Cleanup(func() { _ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS "+table) })
			c.Close(ctxT(t))

			var committed, began atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for w := range 6 {
				conn := env.connect(t)
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- runUntilShutdown(conn, table, w, &began, &committed)
				}()
			}
			waitFor(t, func() bool { return committed.Load() >= 12 }, "transactions to commit")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			defer func() {
				if t.Failed() {
					t.Log(tail(env.logs.String(), 40))
				}
			}()
			if forced := env.daemon.Shutdown(ctx); forced {
				t.Fatal("shutdown had to force clients out although every transaction was short")
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if sqlState(err) != "57P01" {
					t.Errorf("client ended with %v; want SQLSTATE 57P01 between transactions", err)
				}
			}
			rows, err := cluster.QueryStrings(ctxT(t), dbName, "SELECT count(*)::text FROM "+table)
			must(t, err)
			if got := rows[0][0]; got != fmt.Sprint(committed.Load()) || began.Load() != committed.Load() {
				t.Fatalf("began %d, committed %d, rows %s: a transaction in flight was lost", began.Load(), committed.Load(), got)
			}
		})
	}
}

// runUntilShutdown runs short transactions until the proxy refuses; it
// returns that refusal, or a failure inside a transaction.
func runUntilShutdown(c *pgx.Conn, table string, w int, began, committed *atomic.Int64) error {
	ctx := context.Background()
	for n := 0; ; n++ {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		began.Add(1)
		if _, err := tx.Exec(ctx, "INSERT INTO "+table+" VALUES ($1, $2)", w, n); err != nil {
			return errors.Join(errors.New("inside a transaction"), err)
		}
		if _, err := tx.Exec(ctx, "SELECT pg_sleep(0.05)"); err != nil {
			return errors.Join(errors.New("inside a transaction"), err)
		}
		if err := tx.Commit(ctx); err != nil {
			return errors.Join(errors.New("at commit"), err)
		}
		committed.Add(1)
	}
}
