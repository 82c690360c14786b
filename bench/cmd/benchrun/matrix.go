package main

import (
	"context"
	"fmt"
	"io"
)

// row is one line of the result table: a spec in one pool mode, measured
// against all three targets.
type row struct {
	spec
	mode     string
	direct   measurement // the same for both pool modes of a spec
	bouncer  measurement
	pgrotate measurement
	// pairs are the repeats in which both poolers ran, back to back, with
	// CPU figures: the same noise and drift hit both runs of a pair.
	pairs []runPair
}

// runPair is one repeat of a row: each pooler's run.
type runPair struct{ bouncer, pgrotate measurement }

// bench holds everything the matrix runs against.
type bench struct {
	settings settings
	pgbench  *pgbench
	direct   target
	bouncer  *bouncer
	execPass string // PgBouncer's clients log in as the executing role
	pgrotate *proxy
	progress io.Writer

	directCache map[spec]measurement // direct has no pool mode: run once per spec
}

// runMatrix measures every row. The targets of a row run back to back, and
// the poolers' order alternates from row to row, so that noise from other
// work on the machine, and any drift over the run, hits them alike. On
// error (only a cancelled ctx) it returns the rows measured so far.
func (b *bench) runMatrix(ctx context.Context) ([]row, error) {
	s := b.settings
	total := len(s.workloads) * len(s.protocols) * len(s.modes) * len(s.clients)
	var rows []row
	for _, w := range s.workloads {
		for _, p := range s.protocols {
			for _, m := range s.modes {
				for _, c := range s.clients {
					r := row{spec: spec{workload: w, protocol: p, clients: c}, mode: m}
					if err := b.measureRow(ctx, &r, len(rows)%2 == 1); err != nil {
						return rows, err
					}
					rows = append(rows, r)
					fmt.Fprintf(b.progress, "[%d/%d] %s\n", len(rows), total, r.summary())
				}
			}
		}
	}
	return rows, nil
}

// warmUp runs every pooler target at the largest client count and throws
// the numbers away, so that the first rows pay neither for filling the
// pools nor for the new backends' first seconds, which on a small VM run at
// a fraction of their later speed. Each target first runs select-only,
// which fills its pool; for pgrotate that takes most of a short run (each
// new server connection is a SCRAM login, which costs it a PBKDF2
// computation), so its backends would start the first row barely used
// while PgBouncer's had run for seconds. Then it runs every workload of
// the run once on the full pool. A target that fails here will fail its
// rows too, where it is reported.
func (b *bench) warmUp(ctx context.Context) error {
	for _, mode := range b.settings.modes {
		for _, t := range []target{b.bouncer.target(mode, b.execPass), b.pgrotate.target(mode)} {
			for _, w := range warmUpWorkloads(b.settings.workloads) {
				s := spec{workload: w, protocol: "simple", clients: b.settings.maxClients()}
				if _, err := b.pgbench.measure(ctx, t, s); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// warmUpWorkloads is select-only, to fill a pool, then each workload of the
// run but connect, whose new connection per transaction warms nothing.
func warmUpWorkloads(workloads []string) []string {
	out := []string{"select-only"}
	for _, w := range workloads {
		if w != "connect" {
			out = append(out, w)
		}
	}
	return out
}

// measureRow fills r's three measurements. Each target runs
// settings.repeat times, the poolers swapping order every time, and the row
// holds the medians: one run on a shared machine is often off by 20 %.
func (b *bench) measureRow(ctx context.Context, r *row, pgrotateFirst bool) error {
	var bouncer, pgrotate []measurement
	steps := []func() error{
		func() error {
			m, err := b.measureBouncer(ctx, r.spec, r.mode)
			bouncer = append(bouncer, m)
			return err
		},
		func() error {
			m, err := b.measureProxy(ctx, b.pgrotate.target(r.mode), r.spec)
			pgrotate = append(pgrotate, m)
			return err
		},
	}
	if pgrotateFirst {
		steps[0], steps[1] = steps[1], steps[0]
	}
	var err error
	if r.direct, err = b.measureDirect(ctx, r.spec); err != nil {
		return err
	}
	for range b.settings.repeat {
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		steps[0], steps[1] = steps[1], steps[0]
	}
	r.bouncer, r.pgrotate = median(bouncer), median(pgrotate)
	r.pairs = pairUp(bouncer, pgrotate)
	return nil
}

// measureDirect runs a spec against PostgreSQL settings.repeat times and
// reuses the median for the other pool mode.
func (b *bench) measureDirect(ctx context.Context, s spec) (measurement, error) {
	if m, ok := b.directCache[s]; ok {
		return m, nil
	}
	var runs []measurement
	for range b.settings.repeat {
		m, err := b.pgbench.measure(ctx, b.direct, s)
		if err != nil {
			return m, err
		}
		runs = append(runs, m)
	}
	m := median(runs)
	b.directCache[s] = m
	return m, nil
}

// measureBouncer runs a spec against PgBouncer, unless its version cannot
// run it at all: named prepared statements in transaction mode before 1.21.
func (b *bench) measureBouncer(ctx context.Context, s spec, mode string) (measurement, error) {
	if mode == "transaction" && s.protocol == "prepared" && !b.bouncer.preparedInTx {
		return unsupported(), nil
	}
	return b.measureProxy(ctx, b.bouncer.target(mode, b.execPass), s)
}

// measureProxy runs a spec against a proxy, restarting the proxy first if
// an earlier row crashed it.
func (b *bench) measureProxy(ctx context.Context, t target, s spec) (measurement, error) {
	reason, err := t.proc.restartIfExited()
	if err != nil {
		return measurement{}, err
	}
	if reason != "" {
		fmt.Fprintf(b.progress, "restarted %s: %s\n", t.name, reason)
		if err := t.waitReady(ctx); err != nil {
			return failed(err, ""), ctx.Err()
		}
	}
	return b.pgbench.measure(ctx, t, s)
}

// summary is the progress line of a finished row.
func (r row) summary() string {
	return fmt.Sprintf("%s -M %s %s c=%d: direct %s, PgBouncer %s, pgrotate %s",
		r.workload, r.protocol, r.mode, r.clients, r.direct.brief(), r.bouncer.brief(), r.pgrotate.brief())
}

// brief is a measurement in a few words, for progress lines.
func (m measurement) brief() string {
	if !m.ok() {
		return m.problem
	}
	return fmt.Sprintf("%.0f tps", m.tps)
}
