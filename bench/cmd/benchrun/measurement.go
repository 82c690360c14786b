package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// measurement is what one pgbench run against one target yielded. When
// problem is set, the run produced no numbers and problem says why.
type measurement struct {
	tps          float64 // without initial connection time (connect: with every login)
	transactions int64   // completed
	failedTx     int64   // pgbench's "number of failed transactions"
	p99          time.Duration
	cpuPerTx     time.Duration // proxy user+sys CPU / transactions
	// switchesPerTx: the proxy's context switches / transactions;
	// preemptedPerTx: the involuntary ones among them.
	switchesPerTx, preemptedPerTx float64
	hasCPU                        bool // cpuPerTx and the switches are valid (proxies only)
	// tpsSpread, p99Spread and cpuSpread are how far apart the repeated
	// runs of a median were: the largest figure divided by the smallest (1:
	// all alike; 0: fewer than two runs, or no such figure).
	tpsSpread, p99Spread, cpuSpread float64
	problem                         string // "failed: …" or "n/a (…)"
}

// ok reports whether the measurement holds numbers.
func (m measurement) ok() bool { return m.problem == "" }

// unsupported is the measurement of a combination the pooler cannot run.
func unsupported() measurement { return measurement{problem: "n/a (unsupported)"} }

// failed turns a pgbench failure into a one-line reason for the table.
func failed(err error, output string) measurement {
	reason := firstErrorLine(output)
	if reason == "" {
		reason = err.Error()
		if last := lastLines(strings.TrimSpace(output), 1); last != "" {
			reason += ": " + last
		}
	}
	return measurement{problem: "failed: " + shorten(reason, 70)}
}

// median combines repeated runs of one target: the median tps, p99 and
// CPU per transaction, and the sums of transactions and failures. A run
// that produced no numbers makes the whole measurement that run's problem,
// so a failure is never hidden by the runs that went well.
func median(runs []measurement) measurement {
	for _, m := range runs {
		if !m.ok() {
			return m
		}
	}
	out := measurement{hasCPU: true}
	for _, m := range runs {
		out.transactions += m.transactions
		out.failedTx += m.failedTx
		out.hasCPU = out.hasCPU && m.hasCPU
	}
	out.tps = middle(runs, func(m measurement) float64 { return m.tps })
	out.p99 = time.Duration(middle(runs, func(m measurement) float64 { return float64(m.p99) }))
	out.cpuPerTx = time.Duration(middle(runs, func(m measurement) float64 { return float64(m.cpuPerTx) }))
	out.switchesPerTx = middle(runs, func(m measurement) float64 { return m.switchesPerTx })
	out.preemptedPerTx = middle(runs, func(m measurement) float64 { return m.preemptedPerTx })
	out.tpsSpread = spread(runs, func(m measurement) float64 { return m.tps })
	out.p99Spread = spread(runs, func(m measurement) float64 { return float64(m.p99) })
	if out.hasCPU {
		out.cpuSpread = spread(runs, func(m measurement) float64 { return float64(m.cpuPerTx) })
	}
	return out
}

// spread is the largest of one figure of runs divided by the smallest; 0
// for fewer than two runs or a figure that is not positive.
func spread(runs []measurement, figure func(measurement) float64) float64 {
	if len(runs) < 2 {
		return 0
	}
	lo, hi := figure(runs[0]), figure(runs[0])
	for _, m := range runs[1:] {
		lo, hi = min(lo, figure(m)), max(hi, figure(m))
	}
	if lo <= 0 {
		return 0
	}
	return hi / lo
}

// middle is the median of one figure of runs.
func middle(runs []measurement, figure func(measurement) float64) float64 {
	v := make([]float64, len(runs))
	for i, m := range runs {
		v[i] = figure(m)
	}
	return medianOf(v)
}

// medianOf is the median of v (the mean of the two middle values when
// there is an even number of them); v is sorted in place.
func medianOf(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

var (
	// With -C (the connect workload) pgbench counts every login in, and
	// says so instead.
	tpsLine    = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \((?:without initial connection time|including reconnection times)\)`)
	txLine     = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
	failedLine = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
)

// parseSummary reads the summary pgbench prints at the end of a run.
// "number of failed transactions" appeared in PostgreSQL 15; older pgbench
// aborts the client instead, so a missing line means none failed.
func parseSummary(out string) (measurement, error) {
	var m measurement
	tps := tpsLine.FindStringSubmatch(out)
	tx := txLine.FindStringSubmatch(out)
	if tx != nil && tx[1] == "0" {
		// pgbench's -T clock includes the clients' logins; with many
		// clients on a busy machine they can take all of it.
		return m, errors.New("no transaction completed within -T (logins took that long?)")
	}
	if tps == nil || tx == nil {
		return m, errors.New("no tps in pgbench output")
	}
	var err1, err2, err3 error
	m.tps, err1 = strconv.ParseFloat(tps[1], 64)
	m.transactions, err2 = strconv.ParseInt(tx[1], 10, 64)
	if f := failedLine.FindStringSubmatch(out); f != nil {
		m.failedTx, err3 = strconv.ParseInt(f[1], 10, 64)
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		return m, fmt.Errorf("parsing pgbench output: %w", err)
	}
	return m, nil
}

// p99Latency reads pgbench's per-transaction logs (one per thread, named
// prefix.<pid>[.<thread>]) and returns the 99th percentile of the latency
// column. Each line is "client_id transaction_no time script_no
// time_epoch time_us …" with time in microseconds; failed or skipped
// transactions carry a word there and are left out.
func p99Latency(prefix string) (time.Duration, error) {
	files, err := filepath.Glob(prefix + ".*")
	if err != nil || len(files) == 0 {
		return 0, fmt.Errorf("finding pgbench transaction logs %s.*: none", filepath.Base(prefix))
	}
	var micros []int64
	for _, f := range files {
		if micros, err = appendLatencies(micros, f); err != nil {
			return 0, err
		}
	}
	if len(micros) == 0 {
		return 0, errors.New("reading pgbench transaction logs: no latencies")
	}
	slices.Sort(micros)
	// Nearest-rank percentile: the smallest value with 99 % at or below it.
	rank := (len(micros)*99 + 99) / 100
	return time.Duration(micros[rank-1]) * time.Microsecond, nil
}

// appendLatencies adds the latency column of one log file to micros.
func appendLatencies(micros []int64, path string) ([]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return micros, fmt.Errorf("reading pgbench transaction log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		if us, err := strconv.ParseInt(fields[2], 10, 64); err == nil {
			micros = append(micros, us)
		}
	}
	if err := sc.Err(); err != nil {
		return micros, fmt.Errorf("reading pgbench transaction log %s: %w", filepath.Base(path), err)
	}
	return micros, nil
}

// firstErrorLine finds the first line of pgbench output that explains a
// failure, without pgbench's "pgbench: error: " prefix.
func firstErrorLine(out string) string {
	for _, line := range strings.Split(out, "\n") {
		lower := strings.ToLower(line)
		if strings.Contains(lower, "error") || strings.Contains(lower, "fatal") || strings.Contains(lower, "abort") {
			line = strings.TrimPrefix(line, "pgbench: ")
			line = strings.TrimPrefix(line, "error: ")
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// shorten keeps a table cell readable: one line, at most n runes, and no
// '|' (which would split a markdown cell).
func shorten(s string, n int) string {
	s = strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", "/")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// lastLines returns the last n lines of s, for error messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
