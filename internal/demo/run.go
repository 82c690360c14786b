package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgrotate/pgrotate/internal/pgcluster"
)

// logTailLines is how much of pgrotate's log is shown when something failed.
const logTailLines = 30

// stage is a demo that is set up and ready to play.
type stage struct {
	cfg     Config
	workDir string
	logPath string
	cluster *pgcluster.Cluster
	secret  *secretDir
	daemon  *runningDaemon
	pool    *pgxpool.Pool
	appPW   string // the application's password; never printed
}

// Run runs the demo: sets everything up, runs the workload and the
// rotations for cfg.Duration or until ctx is canceled (the summary is still
// produced then), writes the live view (unless cfg.Quiet) and the summary to
// out, and tears everything down. The error reports a demo that could not
// run or clean up; a run that showed a problem returns a Summary whose OK
// is false.
func Run(ctx context.Context, cfg Config, out io.Writer) (sum Summary, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return Summary{}, fmt.Errorf("checking demo settings: %w", err)
	}
	var td teardown
	defer func() { err = errors.Join(err, td.run()) }()
	st, err := setUp(ctx, cfg, &td)
	if st != nil {
		sum.WorkDir, sum.ClusterDir = st.workDir, st.clusterDir()
	}
	if err == nil {
		sum, err = st.play(ctx, out)
	}
	if st != nil && (err != nil || !sum.OK()) {
		writeLogTail(out, st.logPath)
	}
	return sum, err
}

// setUp builds the stage: a temporary directory, the cluster with the first
// executing role, the credential directory, pgrotate and the application
// schema. Whatever it made is on td, also when it fails; the stage is
// returned as far as it got.
func setUp(ctx context.Context, cfg Config, td *teardown) (*stage, error) {
	workDir, err := os.MkdirTemp("", "pgrotate-demo-")
	if err != nil {
		return nil, fmt.Errorf("creating work directory: %w", err)
	}
	td.push(func() error { return os.RemoveAll(workDir) })
	st := &stage{cfg: cfg, workDir: workDir, logPath: filepath.Join(workDir, "pgrotate.log")}
	steps := []func(context.Context, *teardown) error{st.startCluster, st.startPgrotate, st.openApp}
	for _, step := range steps {
		if err := step(ctx, td); err != nil {
			return st, err
		}
	}
	return st, nil
}

func (st *stage) clusterDir() string {
	if st.cluster == nil {
		return ""
	}
	return filepath.Dir(st.cluster.DataDir)
}

// startCluster starts PostgreSQL with the owner role and the first
// executing role, and publishes that role's credential.
func (st *stage) startCluster(ctx context.Context, td *teardown) error {
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		return err
	}
	st.cluster = c
	td.push(c.Stop)
	if err := c.CreateBookstore(ctx, bookstore); err != nil {
		return err
	}
	password := newPassword()
	if err := c.CreateExecutingRole(ctx, bookstore, roleName(1), password); err != nil {
		return err
	}
	if st.secret, err = newSecretDir(filepath.Join(st.workDir, "secret")); err != nil {
		return err
	}
	return st.secret.publish(roleName(1), password)
}

// startPgrotate starts pgrotate in this process, logging to a file.
func (st *stage) startPgrotate(ctx context.Context, td *teardown) error {
	logFile, err := os.OpenFile(st.logPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating pgrotate log: %w", err)
	}
	td.push(logFile.Close)
	cfg, err := pgrotateConfig(st.cluster.Host, st.cluster.Port, poolSize(st.cfg.Clients), st.secret.path, st.appPassword())
	if err != nil {
		return fmt.Errorf("building pgrotate config: %w", err)
	}
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := startDaemon(ctx, cfg, log)
	if err != nil {
		return err
	}
	st.daemon = d
	td.push(d.close)
	return nil
}

// appPassword is the application's stable password, made once per run.
func (st *stage) appPassword() string {
	if st.appPW == "" {
		st.appPW = newPassword()
	}
	return st.appPW
}

// openApp opens the application's pool through pgrotate and creates its schema.
func (st *stage) openApp(ctx context.Context, td *teardown) error {
	pool, err := newAppPool(ctx, st.daemon.addr, st.appPassword(), st.cfg.Clients+1)
	if err != nil {
		return err
	}
	st.pool = pool
	td.push(func() error { pool.Close(); return nil })
	if err := createSchema(ctx, pool, st.cfg.Clients); err != nil {
		return fmt.Errorf("creating the application schema through pgrotate: %w", err)
	}
	return nil
}

// writeLogTail prints the end of pgrotate's log.
func writeLogTail(out io.Writer, path string) {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	lines = lines[max(0, len(lines)-logTailLines):]
	fmt.Fprintf(out, "\nlast %d lines of pgrotate's log:\n%s\n", len(lines), strings.Join(lines, "\n"))
}
