package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// runInfo describes the run for the report's header.
type runInfo struct {
	started         time.Time
	revision        string // git revision of pgrotate, from run.sh
	postgresVersion string
	bouncerVersion  string
	cpus            int
	host            string // kernel and scheduling (describeHost); "" when unknown
	settings        settings
}

const dash = "—"

var tableHeader = []string{
	"workload", "-M", "pool mode", "clients", "direct tps",
	"PgBouncer tps", "PgBouncer p99 ms", "PgBouncer CPU µs/tx",
	"pgrotate tps", "pgrotate p99 ms", "pgrotate CPU µs/tx",
	"failed tx (B / R)", "tps R/B", "CPU R/B",
}

// report renders the whole result: header, table and how to read it.
func report(info runInfo, res results) string {
	var b strings.Builder
	b.WriteString(header(info))
	b.WriteString(table(res.rows))
	b.WriteString(notes(info.settings))
	b.WriteString(switchTable(res.rows))
	if info.settings.repeat > 1 {
		b.WriteString(noiseTable(res.rows))
		b.WriteString(pairTable(res.rows))
	}
	if len(res.rotations) > 0 {
		b.WriteString(rotationTable(res.rotations))
	}
	return b.String()
}

// header says what was measured on what.
func header(info runInfo) string {
	s := info.settings
	return fmt.Sprintf(`# pgrotate vs PgBouncer vs direct — %s

- pgrotate %s; PostgreSQL %s; PgBouncer %s; %d CPUs%s
- pgbench -T %s -j %d, scale %d, latency log sampling rate %g; %s

`, info.started.Format("2006-01-02 15:04:05 MST"), info.revision, info.postgresVersion,
		info.bouncerVersion, info.cpus, hostSuffix(info.host), s.duration, s.jobs, s.scale, s.samplingRate, runsPerRow(s.repeat))
}

// hostSuffix appends the host's description to the header's first line.
func hostSuffix(host string) string {
	if host == "" {
		return ""
	}
	return "; " + host
}

// table is the markdown table, one line per row.
func table(rows []row) string {
	var b strings.Builder
	b.WriteString(markdownLine(tableHeader))
	sep := make([]string, len(tableHeader))
	for i := range sep {
		sep[i] = "---"
		if i >= 3 {
			sep[i] = "---:"
		}
	}
	b.WriteString(markdownLine(sep))
	for _, r := range rows {
		b.WriteString(markdownLine(r.cells()))
	}
	return b.String()
}

// cells are a row's table cells, in tableHeader's order.
func (r row) cells() []string {
	cells := []string{r.workload, r.protocol, r.mode, fmt.Sprint(r.clients), tpsCell(r.direct)}
	cells = append(cells, poolerCells(r.bouncer)...)
	cells = append(cells, poolerCells(r.pgrotate)...)
	return append(cells,
		failedCell(r.bouncer)+" / "+failedCell(r.pgrotate),
		ratioCell(r.pgrotate.ok() && r.bouncer.ok(), r.pgrotate.tps, r.bouncer.tps),
		ratioCell(r.pgrotate.hasCPU && r.bouncer.hasCPU, float64(r.pgrotate.cpuPerTx), float64(r.bouncer.cpuPerTx)))
}

// poolerCells are tps, p99 and CPU per transaction of one pooler.
func poolerCells(m measurement) []string {
	if !m.ok() {
		return []string{m.problem, dash, dash}
	}
	cpu := dash
	if m.hasCPU {
		cpu = fmt.Sprintf("%.1f", microseconds(m.cpuPerTx))
	}
	return []string{tpsCell(m), fmt.Sprintf("%.2f", float64(m.p99)/float64(time.Millisecond)), cpu}
}

func microseconds(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func tpsCell(m measurement) string {
	if !m.ok() {
		return m.problem
	}
	return fmt.Sprintf("%.0f", m.tps)
}

func failedCell(m measurement) string {
	if !m.ok() {
		return dash
	}
	return fmt.Sprint(m.failedTx)
}

func ratioCell(valid bool, num, den float64) string {
	if !valid || den == 0 {
		return dash
	}
	return fmt.Sprintf("%.2f", num/den)
}

func markdownLine(cells []string) string {
	return "| " + strings.Join(cells, " | ") + " |\n"
}

// runsPerRow says what a figure in the table is.
func runsPerRow(n int) string {
	if n == 1 {
		return "one run per target and row"
	}
	return fmt.Sprintf("each figure the median of %d runs per target and row, the poolers swapping order each run", n)
}

// notes explain the columns under the table.
func notes(s settings) string {
	return fmt.Sprintf(`
Notes:
- Session-mode pools (PgBouncer and pgrotate) hold up to %d server connections, the
  most clients of any row, so session rows compare relay cost, not queueing.
  Transaction-mode pools hold %d.
- CPU µs/tx is the pooler process's user+sys CPU time during the pgbench run
  (client logins included) divided by the transactions pgbench completed. It is
  much steadier than tps on a shared machine; lower is better.
- R/B columns are pgrotate divided by PgBouncer: tps above 1 and CPU below 1 favour pgrotate.
- direct runs per workload, protocol and client count and is shown in both pool modes;
  its -T is longer by 40 ms per client, the time PostgreSQL takes to log them in.
- "n/a (unsupported)": PgBouncer before 1.21 cannot keep named prepared statements
  (-M prepared) across transaction-mode server connections.
`, s.maxClients(), s.txPoolSize) + connectNote(s)
}

// connectNote explains the connect rows, when the run has them.
func connectNote(s settings) string {
	if !slices.Contains(s.workloads, "connect") {
		return ""
	}
	return `- connect is pgbench -S -C: every transaction opens a new connection and logs in (SCRAM),
  and its tps counts the logins in. Its CPU µs/tx is what a login and one query cost the
  pooler; the poolers' server connections stay pooled.
`
}

// switchTable lists the poolers' context switches per transaction, for the
// rows where both ran. On a shared VM they usually vary less from run to
// run than CPU time, and each one costs several µs there: they help tell
// whether a change in CPU comes from the pooler or from its neighbours.
func switchTable(rows []row) string {
	var b strings.Builder
	b.WriteString("\n## Context switches per transaction\n\n")
	b.WriteString(markdownLine([]string{"workload", "-M", "pool mode", "clients", "PgBouncer", "pgrotate", "R/B",
		"PgBouncer preempted", "pgrotate preempted", "R/B"}))
	b.WriteString(markdownLine([]string{"---", "---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"}))
	for _, r := range rows {
		if !r.bouncer.hasCPU || !r.pgrotate.hasCPU {
			continue
		}
		b.WriteString(markdownLine([]string{r.workload, r.protocol, r.mode, fmt.Sprint(r.clients),
			fmt.Sprintf("%.3f", r.bouncer.switchesPerTx), fmt.Sprintf("%.3f", r.pgrotate.switchesPerTx),
			ratioCell(true, r.pgrotate.switchesPerTx, r.bouncer.switchesPerTx),
			fmt.Sprintf("%.3f", r.bouncer.preemptedPerTx), fmt.Sprintf("%.3f", r.pgrotate.preemptedPerTx),
			ratioCell(true, r.pgrotate.preemptedPerTx, r.bouncer.preemptedPerTx)}))
	}
	b.WriteString(`
Summed over the pooler's threads (voluntary and involuntary, from
/proc/<pid>/task/*/status) during the run, logins included, divided by the
transactions completed; the median of the runs, as above. "preempted" counts
the involuntary ones alone: the thread could have run on, and another task
took its CPU, as a client or backend woken by the pooler's send does (see
"Who preempts the loop" in bench/README.md).
`)
	return b.String()
}

// noiseTable shows, per row where both poolers ran, how far each pooler's
// repeated runs were apart (largest ÷ smallest), and counts the rows whose
// R/B ratio lies within that: a ratio no further from 1 than the poolers'
// own runs are from each other says nothing about which is better. This is
// the yardstick for the R/B columns (and for comparing p99), measured in the
// same run.
func noiseTable(rows []row) string {
	var b strings.Builder
	b.WriteString("\n## Run-to-run spread within a row\n\n")
	b.WriteString(markdownLine([]string{"workload", "-M", "pool mode", "clients",
		"PgBouncer tps", "pgrotate tps", "PgBouncer p99", "pgrotate p99", "PgBouncer CPU", "pgrotate CPU"}))
	b.WriteString(markdownLine([]string{"---", "---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"}))
	var spreads [len(noiseFigures) * 2][]float64
	var within [len(noiseFigures)]int
	n := 0
	for _, r := range rows {
		if !r.bouncer.hasCPU || !r.pgrotate.hasCPU || r.bouncer.tpsSpread == 0 || r.pgrotate.tpsSpread == 0 {
			continue
		}
		n++
		cells := []string{r.workload, r.protocol, r.mode, fmt.Sprint(r.clients)}
		for i, f := range noiseFigures {
			sb, sr := f.spread(r.bouncer), f.spread(r.pgrotate)
			spreads[2*i], spreads[2*i+1] = append(spreads[2*i], sb), append(spreads[2*i+1], sr)
			cells = append(cells, fmt.Sprintf("%.2f", sb), fmt.Sprintf("%.2f", sr))
			if withinSpread(f.value(r.pgrotate)/f.value(r.bouncer), sb, sr) {
				within[i]++
			}
		}
		b.WriteString(markdownLine(cells))
	}
	if n == 0 {
		return ""
	}
	fmt.Fprintf(&b, `
Largest ÷ smallest of each pooler's runs in the row (1.10: its runs were up to 10 %%
apart). Medians: tps %.2f (PgBouncer) and %.2f (pgrotate), p99 %.2f and %.2f, CPU %.2f and
%.2f. The R/B ratio is no further from 1 than the larger of the two poolers' spreads in that
row in %d of %d rows for tps, %d of %d for p99 and %d of %d for CPU.
`, medianOf(spreads[0]), medianOf(spreads[1]), medianOf(spreads[2]), medianOf(spreads[3]),
		medianOf(spreads[4]), medianOf(spreads[5]), within[0], n, within[1], n, within[2], n)
	return b.String()
}

// noiseFigures are the figures noiseTable looks at, in its column order.
var noiseFigures = [...]struct {
	value, spread func(measurement) float64
}{
	{func(m measurement) float64 { return m.tps }, func(m measurement) float64 { return m.tpsSpread }},
	{func(m measurement) float64 { return float64(m.p99) }, func(m measurement) float64 { return m.p99Spread }},
	{func(m measurement) float64 { return float64(m.cpuPerTx) }, func(m measurement) float64 { return m.cpuSpread }},
}

// withinSpread reports whether ratio lies between 1/s and s, s being the
// larger of the two spreads.
func withinSpread(ratio, a, b float64) bool {
	s := max(a, b)
	return ratio <= s && ratio >= 1/s
}
