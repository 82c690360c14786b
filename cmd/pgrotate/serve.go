package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pgrotate/pgrotate/configs"
	"github.com/pgrotate/pgrotate/internal/daemon"
)

// runServe runs the proxy until SIGTERM or SIGINT. SIGHUP re-reads every
// credential source.
func runServe(ctx context.Context, args []string, io stdio) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.err)
	path := fs.String("config", "pgrotate.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cfg, err := configs.Load(*path)
	if err != nil {
		return fail(io.err, err)
	}
	log := newLogger(cfg.Log, io.err)
	d, err := daemon.New(cfg, log)
	if err != nil {
		return fail(io.err, err)
	}
	ls, err := daemon.Listen(cfg)
	if err != nil {
		return fail(io.err, err)
	}
	log.Info("pgrotate listening", "addr", ls.Clients.Addr().String(), "admin", cfg.AdminListen)
	return serveUntilSignal(ctx, d, ls, cfg.Limits.ShutdownTimeout.Duration, log)
}

// serveUntilSignal runs d and maps the signal that ends it to an exit code.
func serveUntilSignal(ctx context.Context, d *daemon.Daemon, ls daemon.Listeners, shutdownTimeout time.Duration, log *slog.Logger) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.RunAll(ctx, ls) }()
	code := exitOK
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Error("pgrotate stopped", "err", err)
				return exitFailure
			}
			log.Info("pgrotate stopped")
			return code
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				log.Info("SIGHUP: re-reading the config's clients, every credential source and the TLS certificate")
				d.Reload()
				continue
			}
			code = shutdown(d, sig, shutdownTimeout, log)
			cancel()
		}
	}
}

// shutdown stops d for sig. SIGTERM lets clients finish their transactions
// for up to shutdownTimeout and exits 0, or 143 when it had to cut them off;
// SIGINT (Ctrl-C) disconnects everyone at once and exits 130, as
// PostgreSQL's fast shutdown does.
func shutdown(d *daemon.Daemon, sig os.Signal, shutdownTimeout time.Duration, log *slog.Logger) int {
	if sig == syscall.SIGINT {
		shutdownTimeout = 0
	}
	log.Info("shutting down", "signal", sig.String(), "timeout", shutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	forced := d.Shutdown(ctx)
	switch {
	case sig == syscall.SIGINT:
		return exitInterrupt
	case forced:
		return exitForced
	default:
		return exitOK
	}
}

// newLogger builds the process logger: one event per line, text or JSON.
func newLogger(c configs.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
