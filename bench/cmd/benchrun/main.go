package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses the flags, runs the benchmark and maps the outcome to an exit
// code. Everything started is stopped and removed before it returns,
// whether the run finished, failed or was interrupted.
func run(args []string, stdout, stderr io.Writer) int {
	s, err := parseSettings(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	info := runInfo{started: time.Now(), revision: s.revision, cpus: runtime.NumCPU(), host: describeHost(readHostFile), settings: s}
	res, err := benchmark(ctx, s, &info, stderr)
	if len(res.rows) > 0 {
		text := report(info, res)
		fmt.Fprint(stdout, "\n"+text)
		if err == nil {
			err = saveReport(s.resultsDir, info.started, text, stderr)
		}
	}
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "benchrun: interrupted; everything it started is stopped")
		return exitInterrupted
	case err != nil:
		fmt.Fprintln(stderr, "benchrun:", err)
		return exitFailure
	}
	return exitOK
}

// results is everything a run measured.
type results struct {
	rows      []row
	rotations []rotationResult
}

// benchmark sets up PostgreSQL, pgrotate and PgBouncer in a temporary
// directory, runs the matrix and the rotations, and tears everything down
// again.
func benchmark(ctx context.Context, s settings, info *runInfo, log io.Writer) (res results, err error) {
	tmp, err := os.MkdirTemp("", "pgrotate-bench-")
	if err != nil {
		return res, fmt.Errorf("creating temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	// PgBouncer may run as another OS user: let it traverse into its own
	// subdirectory, but list nothing here.
	if err := os.Chmod(tmp, 0o711); err != nil {
		return res, fmt.Errorf("opening temporary directory: %w", err)
	}
	fmt.Fprintln(log, "starting PostgreSQL …")
	db, err := startDatabase(ctx, s)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, db.stop()) }()
	info.postgresVersion = db.version
	b, err := setUpTargets(ctx, tmp, db, s, log)
	if b != nil {
		defer b.stopProxies()
	}
	if err != nil {
		return res, err
	}
	info.bouncerVersion = b.bouncer.version
	fmt.Fprintln(log, "warming up the pools …")
	if err := b.warmUp(ctx); err != nil {
		return res, err
	}
	fmt.Fprintln(log, "running the matrix …")
	if res.rows, err = b.runMatrix(ctx); err != nil || !s.rotation {
		return res, err
	}
	fmt.Fprintln(log, "rotating under load …")
	res.rotations, err = b.runRotations(ctx, db)
	return res, err
}

// setUpTargets starts pgrotate and PgBouncer, loads the pgbench tables
// through pgrotate and returns the bench. The returned bench, even with an
// error, holds whatever proxy did start, for the caller to stop.
func setUpTargets(ctx context.Context, tmp string, db *database, s settings, log io.Writer) (*bench, error) {
	pgbenchBin, err := findPgbench(db.cluster.BinDir)
	if err != nil {
		return nil, err
	}
	b := &bench{
		settings: s, execPass: db.execPassword, progress: log,
		directCache: map[spec]measurement{},
		direct: target{name: "direct", port: db.cluster.Port, user: execRole, password: db.execPassword,
			db: dbName, options: "-c role=" + ownerRole},
	}
	b.pgbench = &pgbench{bin: pgbenchBin, logDir: filepath.Join(tmp, "pgbench"),
		jobs: s.jobs, duration: s.duration, samplingRate: s.samplingRate}
	if err := os.Mkdir(b.pgbench.logDir, 0o700); err != nil {
		return b, fmt.Errorf("creating pgbench log directory: %w", err)
	}
	if err := b.startProxies(ctx, tmp, db); err != nil {
		return b, err
	}
	fmt.Fprintf(log, "loading pgbench tables (scale %d) through pgrotate …\n", s.scale)
	return b, b.pgbench.initData(ctx, b.pgrotate.target("session"), s.scale)
}

// startProxies starts pgrotate and PgBouncer, each in a subdirectory of
// tmp, and waits until every database of both accepts a query.
func (b *bench) startProxies(ctx context.Context, tmp string, db *database) error {
	var err error
	for _, dir := range []string{"pgrotate", "pgbouncer"} {
		if err := os.Mkdir(filepath.Join(tmp, dir), 0o700); err != nil {
			return fmt.Errorf("creating %s directory: %w", dir, err)
		}
	}
	fmt.Fprintln(b.progress, "starting pgrotate and PgBouncer …")
	if b.pgrotate, err = startPgrotate(ctx, filepath.Join(tmp, "pgrotate"), db, b.settings); err != nil {
		return err
	}
	if b.bouncer, err = startBouncer(ctx, filepath.Join(tmp, "pgbouncer"), db, b.settings); err != nil {
		return err
	}
	// Only session mode must work before the matrix starts: a transaction
	// mode that fails shows up as failed rows instead.
	for _, t := range []target{b.pgrotate.target("session"), b.bouncer.target("session", b.execPass)} {
		if err := t.waitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// stopProxies stops whichever proxies started.
func (b *bench) stopProxies() {
	if b.bouncer != nil {
		b.bouncer.proc.stop()
	}
	if b.pgrotate != nil {
		b.pgrotate.proc.stop()
	}
}

// saveReport writes the report to dir/<timestamp>.md.
func saveReport(dir string, started time.Time, text string, log io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("saving the report: %w", err)
	}
	path := filepath.Join(dir, started.Format("20060102-150405")+".md")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("saving the report: %w", err)
	}
	fmt.Fprintln(log, "\nwritten to", path)
	return nil
}
