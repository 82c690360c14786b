package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// pgbench runs the pgbench binary and turns its output into measurements.
type pgbench struct {
	bin          string
	logDir       string // per-transaction logs, removed after each run
	jobs         int
	duration     time.Duration
	samplingRate float64
	runs         int // numbers the log prefixes
}

// spec is one pgbench invocation of the matrix.
type spec struct {
	workload string // "select-only", "tpcb" or "connect"
	protocol string // pgbench -M
	clients  int
}

// findPgbench prefers the pgbench next to the server binaries, so client and
// server versions match, and falls back to PATH.
func findPgbench(binDir string) (string, error) {
	if p := filepath.Join(binDir, "pgbench"); isExecutable(p) {
		return p, nil
	}
	p, err := exec.LookPath("pgbench")
	if err != nil {
		return "", fmt.Errorf("finding pgbench (install postgresql-client or the contrib package): %w", err)
	}
	return p, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&0o111 != 0
}

// initData creates the pgbench tables through t. Through pgrotate they end
// up owned by the owner role, as every object made through pgrotate does.
func (b *pgbench) initData(ctx context.Context, t target, scale int) error {
	args := append([]string{"-i", "-q", "-s", strconv.Itoa(scale)}, t.connArgs()...)
	args = append(args, t.db)
	out, err := b.run(ctx, t, 10*time.Minute, args)
	if err != nil {
		return fmt.Errorf("initialising pgbench tables through %s: %w\n%s", t.name, err, lastLines(out, 15))
	}
	return nil
}

// measure runs one spec against t and reads throughput, failures, p99
// latency and, for a proxy, its CPU time per transaction. A pgbench that
// fails is reported in the measurement, not as an error, so that one broken
// row does not end the whole run; only a cancelled ctx is an error.
func (b *pgbench) measure(ctx context.Context, t target, s spec) (measurement, error) {
	b.runs++
	prefix := filepath.Join(b.logDir, fmt.Sprintf("run%d", b.runs))
	defer removeLogs(prefix)
	before, usageErr := t.usage()
	d := b.runDuration(t, s)
	out, runErr := b.run(ctx, t, d+time.Minute, b.benchArgs(t, s, d, prefix))
	after, usageErr2 := t.usage()
	if ctx.Err() != nil {
		return measurement{}, ctx.Err()
	}
	if runErr != nil {
		return failed(runErr, out), nil
	}
	m, err := parseSummary(out)
	if err != nil {
		return failed(err, ""), nil
	}
	if m.p99, err = p99Latency(prefix); err != nil {
		return failed(err, ""), nil
	}
	if t.proc != nil && usageErr == nil && usageErr2 == nil && m.transactions > 0 {
		m.cpuPerTx = (after.cpu - before.cpu) / time.Duration(m.transactions)
		m.switchesPerTx = float64(after.switches.total()-before.switches.total()) / float64(m.transactions)
		m.preemptedPerTx = float64(after.switches.involuntary-before.switches.involuntary) / float64(m.transactions)
		m.hasCPU = true
	}
	return m, nil
}

// directLoginTime is about what PostgreSQL itself takes to log a pgbench
// client in on a small VM: a backend to fork and a SCRAM exchange. pgbench's
// -T clock includes the logins, so a run against PostgreSQL directly gets
// that much more of it per client (at -T 5 with 256 clients, no
// transaction completed before the end); the tps pgbench reports leaves
// the connection time out either way. The poolers keep their server
// connections between runs and get -T as it is.
const directLoginTime = 40 * time.Millisecond

// runDuration is the -T of a run of s against t.
func (b *pgbench) runDuration(t target, s spec) time.Duration {
	if t.proc != nil {
		return b.duration
	}
	return b.duration + time.Duration(s.clients)*directLoginTime
}

// benchArgs is the pgbench command line for one measurement. -n skips the
// vacuum pgbench would otherwise run before each TPC-B run: it would go
// through the pooler and be timed with nothing else.
func (b *pgbench) benchArgs(t target, s spec, d time.Duration, logPrefix string) []string {
	return b.loadArgs(t, s, d, "--log", "--log-prefix", logPrefix,
		"--sampling-rate", strconv.FormatFloat(b.samplingRate, 'f', -1, 64))
}

// loadArgs is the command line of a run of s against t for d (whole
// seconds), with extra flags.
func (b *pgbench) loadArgs(t target, s spec, d time.Duration, extra ...string) []string {
	seconds := int(d.Round(time.Second) / time.Second)
	args := []string{
		"-n", "-c", strconv.Itoa(s.clients), "-j", strconv.Itoa(min(b.jobs, s.clients)),
		"-T", strconv.Itoa(seconds), "-M", s.protocol,
	}
	args = append(args, extra...)
	switch s.workload {
	case "select-only":
		args = append(args, "-S")
	case "connect":
		args = append(args, "-S", "-C")
	}
	args = append(args, t.connArgs()...)
	return append(args, t.db)
}

// run executes pgbench with a deadline and returns its combined output.
func (b *pgbench) run(ctx context.Context, t target, timeout time.Duration, args []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd, out := b.command(ctx, t, args)
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	return out.String(), err
}

// command prepares pgbench with args against t; its combined output goes
// to out. It runs in a session of its own (ownSession): a Ctrl-C reaches
// benchrun, which cancels ctx, instead of killing pgbench first and
// looking like a failed row.
func (b *pgbench) command(ctx context.Context, t target, args []string) (cmd *exec.Cmd, out *bytes.Buffer) {
	cmd = exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = t.env()
	cmd.Dir = b.logDir
	cmd.SysProcAttr = ownSession(nil)
	out = new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

// usage is what the proxy process has used so far; zero for the direct
// target.
func (t target) usage() (procUsage, error) {
	if t.proc == nil {
		return procUsage{}, nil
	}
	return t.proc.usage()
}

// removeLogs deletes the per-transaction logs of one run (one file per
// pgbench thread).
func removeLogs(prefix string) {
	files, _ := filepath.Glob(prefix + ".*")
	for _, f := range files {
		_ = os.Remove(f)
	}
}
