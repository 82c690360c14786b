package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgrotate/pgrotate/rotation"
)

// The rotation part of the run: DESIGN.md §6 asks for under 10 % throughput
// dip while a rotation happens under load. pgbench runs against pgrotate
// with a progress line every second, and halfway through the credential
// directory is rewritten to name the other executing role, as a secret
// manager would. PgBouncer has no counterpart: it cannot change the
// credential its server connections log in with without them reconnecting.

// rotationSpec is the load the rotation runs under: select-only with named
// prepared statements, so that session-mode moves carry them.
var rotationSpec = spec{workload: "select-only", protocol: "prepared"}

// rotationResult is one rotation under load in one pool mode.
type rotationResult struct {
	mode     string
	clients  int
	from, to string // executing roles
	// before is the median tps of the whole seconds before the swap (the
	// first second, with the logins, left out); quietWorst the worst of
	// them, which shows how much a second varies without any rotation.
	before, quietWorst float64
	// worst is the lowest tps of a second from the swap on.
	worst    float64
	failedTx int64
	// drain says when the old role had no backend left.
	drain   drained
	problem string
	// seconds are pgbench's one-second tps figures, for the progress line.
	seconds []float64
}

// dip is the fall of the worst second after the swap below the median
// before it, in percent.
func (r rotationResult) dip() float64 { return 100 * (1 - r.worst/r.before) }

// quietDip is the same for the worst second before the swap.
func (r rotationResult) quietDip() float64 { return 100 * (1 - r.quietWorst/r.before) }

// runRotations rotates once per pool mode, each time to the other
// executing role.
func (b *bench) runRotations(ctx context.Context, db *database) ([]rotationResult, error) {
	var out []rotationResult
	for _, mode := range b.settings.modes {
		s := rotationSpec
		s.clients = b.settings.clients[0]
		r := b.rotateUnderLoad(ctx, db, mode, s)
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		out = append(out, r)
		fmt.Fprintf(b.progress, "[rotation] %s\n", r.summary())
	}
	return out, nil
}

// rotateUnderLoad runs pgbench against pgrotate for twice the run length
// and swaps the credential halfway.
func (b *bench) rotateUnderLoad(ctx context.Context, db *database, mode string, s spec) rotationResult {
	from, to := db.current, db.other()
	res := rotationResult{mode: mode, clients: s.clients, from: from.role, to: to.role}
	t := b.pgrotate.target(mode)
	// Warm the pool first (for -T): after the other mode's rotation it may
	// hold fresh backends, or none, and the seconds before the swap would
	// show their warm-up (a fresh backend takes seconds to reach full
	// speed here) instead of the steady state.
	if _, err := b.pgbench.measure(ctx, t, s); err != nil {
		return res
	}
	run := 2 * b.settings.duration
	rctx, cancel := context.WithTimeout(ctx, run+time.Minute)
	defer cancel()
	cmd, out := b.pgbench.command(rctx, t, b.pgbench.loadArgs(t, s, run, "-P", "1"))
	if err := cmd.Start(); err != nil {
		res.problem = "failed: starting pgbench: " + err.Error()
		return res
	}
	swapAt := run / 2
	var swapErr error
	var swappedAt time.Time
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var gone <-chan []drainSample
	select {
	case <-time.After(swapAt):
		swappedAt = time.Now()
		swapErr = rotation.WriteCredential(b.pgrotate.credDir, rotation.FormatDir,
			rotation.Credential{Username: to.role, Password: to.password})
		db.current = to
		gone = watchDrain(wctx, db, from.role, swappedAt)
	case <-rctx.Done():
	}
	runErr := cmd.Wait()
	// pgbench ends with its -T, and its clock starts after the logins: the
	// swap was swapped into that clock.
	loadEnd := time.Since(swappedAt)
	swapped := run - loadEnd
	if gone != nil {
		res.drain = awaitDrain(gone, loadEnd, stopWatch)
	}
	switch {
	case ctx.Err() != nil:
		return res
	case runErr != nil:
		res.problem = failed(runErr, out.String()).problem
		return res
	case swappedAt.IsZero() || swapErr != nil:
		res.problem = fmt.Sprintf("failed: writing the credential: %v", swapErr)
		return res
	}
	if err := res.read(out.String(), swapped); err != nil {
		res.problem = "failed: " + err.Error()
		return res
	}
	return res
}

// awaitDrain waits up to drainGrace for watchDrain to see the old role
// gone; the load ended loadEnd after the swap.
func awaitDrain(gone <-chan []drainSample, loadEnd time.Duration, stop func()) drained {
	var seen []drainSample
	select {
	case seen = <-gone:
	case <-time.After(drainGrace):
		stop()
		seen = <-gone
	}
	return drainFrom(seen, loadEnd)
}

// progressLine is one pgbench -P line: "progress: 5.0 s, 5882.1 tps, …".
var progressLine = regexp.MustCompile(`(?m)^progress: ([0-9.]+) s, ([0-9.]+) tps`)

// read fills the figures from pgbench's output; the swap happened swapped
// into pgbench's run.
func (r *rotationResult) read(out string, swapped time.Duration) error {
	var quiet, after []float64
	for _, m := range progressLine.FindAllStringSubmatch(out, -1) {
		at, _ := strconv.ParseFloat(m[1], 64)
		tps, _ := strconv.ParseFloat(m[2], 64)
		end := time.Duration(at * float64(time.Second))
		r.seconds = append(r.seconds, tps)
		switch {
		case end <= time.Second: // the logins
		case end <= swapped:
			quiet = append(quiet, tps)
		default:
			after = append(after, tps)
		}
	}
	if len(quiet) == 0 || len(after) == 0 {
		return fmt.Errorf("pgbench printed no progress around the swap: %s", lastLines(strings.TrimSpace(out), 1))
	}
	r.quietWorst, r.worst = slices.Min(quiet), slices.Min(after)
	r.before = medianOf(quiet)
	summary, err := parseSummary(out)
	if err != nil {
		return err
	}
	r.failedTx = summary.failedTx
	return nil
}

// summary is the progress line of a finished rotation.
func (r rotationResult) summary() string {
	if r.problem != "" {
		return fmt.Sprintf("%s mode: %s", r.mode, r.problem)
	}
	return fmt.Sprintf("%s mode, %d clients, %s → %s: %.0f tps before, worst second after the swap %.0f (%.1f %% dip), %d failed, old role gone after %s; each second: %.0f",
		r.mode, r.clients, r.from, r.to, r.before, r.worst, r.dip(), r.failedTx, r.drain, r.seconds)
}

var rotationHeader = []string{
	"pool mode", "clients", "from → to", "tps before (median s)", "worst s before",
	"worst s after the swap", "dip", "failed tx", "old role gone after",
}

// rotationTable renders the rotations.
func rotationTable(rs []rotationResult) string {
	var b strings.Builder
	b.WriteString("\n## A rotation under load\n\n")
	b.WriteString(markdownLine(rotationHeader))
	sep := make([]string, len(rotationHeader))
	for i := range sep {
		sep[i] = "---:"
	}
	b.WriteString(markdownLine(sep))
	for _, r := range rs {
		if r.problem != "" {
			b.WriteString(markdownLine([]string{r.mode, fmt.Sprint(r.clients), r.from + " → " + r.to, r.problem, dash, dash, dash, dash, dash}))
			continue
		}
		b.WriteString(markdownLine([]string{
			r.mode, fmt.Sprint(r.clients), r.from + " → " + r.to,
			fmt.Sprintf("%.0f", r.before),
			fmt.Sprintf("%.0f (−%.1f %%)", r.quietWorst, r.quietDip()),
			fmt.Sprintf("%.0f", r.worst),
			fmt.Sprintf("%.1f %%", r.dip()),
			fmt.Sprint(r.failedTx), r.drain.String(),
		}))
	}
	b.WriteString(`
pgbench -S -M prepared -P 1 runs against pgrotate for twice -T; halfway, the credential
directory is rewritten to name the other executing role. "dip" is how far the worst
one-second tps from the swap on falls below the median second before it; "worst s
before" shows how much a second varies with no rotation at all. "old role gone after"
is the time from the swap until the old role had no backend left (polled every 0.1 s),
the moment it could be dropped; when that came only after pgbench ended, the cell says
how many were left then.
`)
	return b.String()
}
