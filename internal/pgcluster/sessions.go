package pgcluster

import (
	"context"
	"fmt"
	"time"
)

// Sessions counts the rows of pg_stat_activity for role usename, across all
// databases, excluding the helper's own connection.
func (c *Cluster) Sessions(ctx context.Context, usename string) (int, error) {
	rows, err := c.QueryStrings(ctx, "postgres",
		"SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()", usename)
	if err != nil {
		return 0, fmt.Errorf("counting sessions of a role: %w", err)
	}
	var n int
	_, err = fmt.Sscan(rows[0][0], &n)
	return n, err
}

// TerminateBackends ends every session of role usename with
// pg_terminate_backend and returns how many it signalled. It returns once
// those backends are gone from pg_stat_activity, so a following Sessions
// call does not still count them.
func (c *Cluster) TerminateBackends(ctx context.Context, usename string) (int, error) {
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return 0, fmt.Errorf("terminating sessions of a role: connecting: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var pids []int32
	err = conn.QueryRow(ctx, `
		SELECT coalesce(array_agg(pid), '{}')
		  FROM (SELECT pid FROM pg_stat_activity
		         WHERE usename = $1 AND pid <> pg_backend_pid()
		        OFFSET 0) s -- OFFSET 0 fences the filter, so we never terminate ourselves
		 WHERE pg_terminate_backend(pid)`, usename).Scan(&pids)
	if err != nil {
		return 0, fmt.Errorf("terminating sessions of a role: %w", err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	for {
		var left int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&left)
		if err != nil {
			return len(pids), fmt.Errorf("waiting for terminated sessions to exit: %w", err)
		}
		if left == 0 {
			return len(pids), nil
		}
		select {
		case <-ctx.Done():
			return len(pids), fmt.Errorf("waiting for %d terminated sessions to exit: %w", left, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
