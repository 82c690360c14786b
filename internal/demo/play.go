package demo

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// summaryTimeout bounds the queries that build the summary. They run after
// ctx may have been canceled by Ctrl-C, so they do not use it.
const summaryTimeout = 30 * time.Second

// play runs the workload and the rotations, shows the view, and returns the
// summary, which it also writes to out.
func (st *stage) play(ctx context.Context, out io.Writer) (Summary, error) {
	start := time.Now()
	w := startWorkload(st.pool, st.cfg.Clients)
	rot := &rotator{cluster: st.cluster, secret: st.secret, daemon: st.daemon, journal: &journal{}, current: 1}
	stopRot, rotDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(rotDone); rot.run(st.cfg.Every, stopRot) }()
	stopView := st.showView(out, w, rot.journal)

	interrupted := false
	timer := time.NewTimer(st.cfg.Duration)
	select {
	case <-ctx.Done():
		interrupted = true
	case <-timer.C:
	}
	timer.Stop()
	elapsed := time.Since(start)
	// Rotations stop first (one in progress finishes), then the workload,
	// whose leaving lets the last old generation drain, then retirements.
	close(stopRot)
	<-rotDone
	w.halt()
	rot.wait()
	stopView()

	sum := Summary{
		Elapsed: elapsed, Interrupted: interrupted,
		Committed: w.committed.Load(), Failed: w.failed.Load(), Migrations: w.migrations.Load(),
		FirstErrors: w.errors(), WorkDir: st.workDir, ClusterDir: st.clusterDir(),
	}
	sum.Rotations, sum.Problems = rot.journal.snapshot()
	if err := st.inspect(&sum); err != nil {
		return sum, err
	}
	sum.write(out, st.cfg)
	return sum, nil
}

// inspect fills in what the database says at the end.
func (st *stage) inspect(sum *Summary) error {
	ctx, cancel := context.WithTimeout(context.Background(), summaryTimeout)
	defer cancel()
	var err error
	if sum.ForeignOwned, err = foreignOwned(ctx, st.cluster); err != nil {
		return err
	}
	sum.RolesLeft, err = executingRoles(ctx, st.cluster)
	return err
}

// showView starts the live view (unless quiet) and returns the function
// that stops it after a last frame.
func (st *stage) showView(out io.Writer, w *workload, j *journal) (stop func()) {
	if st.cfg.Quiet {
		return func() {}
	}
	header := fmt.Sprintf("pgrotate demo: PostgreSQL %d, %d clients, rotate every %s, on %s",
		st.cluster.Version, st.cfg.Clients, st.cfg.Every, st.daemon.addr)
	if !st.cfg.Live {
		fmt.Fprintln(out, header)
	}
	v := newView(out, st.cfg.Live, header, st.cfg.Duration)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { v.watch(ctx, func() sample { return st.sample(w, j) }) })
	return func() { cancel(); wg.Wait() }
}

// sample takes the numbers one frame shows.
func (st *stage) sample(w *workload, j *journal) sample {
	s := sample{
		at:         time.Now(),
		committed:  w.committed.Load(),
		failed:     w.failed.Load(),
		migrations: w.migrations.Load(),
		db:         databaseStatus(st.daemon.Status()),
	}
	s.rotations, s.problems = j.snapshot()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.sessions, s.sessionsErr = sessionsByRole(ctx, st.cluster)
	return s
}
