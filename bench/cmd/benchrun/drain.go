package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// How the rotation run follows the old role's backends: polled over one
// superuser connection (a login per poll would itself load the server), and
// given drainGrace after pgbench ends.
const (
	drainPoll  = 100 * time.Millisecond
	drainGrace = 30 * time.Second
)

// drained is when the old executing role was seen without backends: the
// moment `pgrotate rotate` (or an operator) could drop it.
type drained struct {
	after     time.Duration // from the swap; negative: not seen
	loadEnd   time.Duration // when pgbench ended, from the swap
	leftAtEnd int           // the old role's backends when pgbench ended
}

// watchDrain polls role's backends from since on, until there are none or
// ctx ends, and sends the time from since to none left (negative when that
// was not seen).
func watchDrain(ctx context.Context, db *database, role string, since time.Time) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() { out <- pollDrain(ctx, db, role, since) }()
	return out
}

func pollDrain(ctx context.Context, db *database, role string, since time.Time) time.Duration {
	conn, err := pgx.Connect(ctx, db.cluster.AdminURL("postgres"))
	if err != nil {
		return -1
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n); err != nil {
			return -1
		}
		if n == 0 {
			return time.Since(since)
		}
		select {
		case <-ctx.Done():
			return -1
		case <-tick.C:
		}
	}
}

// String is the table cell: the time under load, or what was left when the
// load ended and how long the rest took.
func (d drained) String() string {
	switch {
	case d.after < 0:
		return fmt.Sprintf("not within %s of the end (%d left then)", drainGrace, d.leftAtEnd)
	case d.after <= d.loadEnd:
		return fmt.Sprintf("%.1f s", d.after.Seconds())
	default:
		return fmt.Sprintf("%.1f s (%d left when the load ended at %.1f s)", d.after.Seconds(), d.leftAtEnd, d.loadEnd.Seconds())
	}
}
