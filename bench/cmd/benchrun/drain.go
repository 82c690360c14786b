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
	leftAtEnd int           // the old role's backends last seen before loadEnd
}

// drainSample is one poll: the old role's backends at some time after the swap.
type drainSample struct {
	at       time.Duration
	sessions int
}

// watchDrain polls role's backends from since on, until there are none or
// ctx ends, and sends what it saw.
func watchDrain(ctx context.Context, db *database, role string, since time.Time) <-chan []drainSample {
	out := make(chan []drainSample, 1)
	go func() { out <- pollDrain(ctx, db, role, since) }()
	return out
}

func pollDrain(ctx context.Context, db *database, role string, since time.Time) []drainSample {
	conn, err := pgx.Connect(ctx, db.cluster.AdminURL("postgres"))
	if err != nil {
		return nil
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	var seen []drainSample
	for {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n); err != nil {
			return seen
		}
		seen = append(seen, drainSample{at: time.Since(since), sessions: n})
		if n == 0 {
			return seen
		}
		select {
		case <-ctx.Done():
			return seen
		case <-tick.C:
		}
	}
}

// drainFrom reads the polls against the end of the load.
func drainFrom(seen []drainSample, loadEnd time.Duration) drained {
	d := drained{after: -1, loadEnd: loadEnd}
	for _, s := range seen {
		if s.at <= loadEnd {
			d.leftAtEnd = s.sessions
		}
		if s.sessions == 0 {
			d.after = s.at
		}
	}
	return d
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
