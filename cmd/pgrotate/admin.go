package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"syscall"

	"github.com/pgrotate/pgrotate/configs"
	"github.com/pgrotate/pgrotate/rotation"
)

// lifecycleFlags are the flags setup and rotate share.
type lifecycleFlags struct {
	fs       *flag.FlagSet
	config   *string
	adminURL *string
	database *string
	dryRun   *bool
}

func newLifecycleFlags(name string, w io.Writer) *lifecycleFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	return &lifecycleFlags{
		fs:       fs,
		config:   fs.String("config", "pgrotate.yaml", "config file"),
		adminURL: fs.String("admin-url", "", "admin connection URL (default: rotation.admin_url, then $PGROTATE_ADMIN_URL)"),
		database: fs.String("database", "", "only this database (a key of databases:); default all"),
		dryRun:   fs.Bool("dry-run", false, "print the plan, change nothing"),
	}
}

// load reads the config and resolves the admin URL: the flag, then the
// config, then the environment.
func (f *lifecycleFlags) load() (*configs.Config, error) {
	cfg, err := configs.Load(*f.config)
	if err != nil {
		return nil, err
	}
	switch {
	case *f.adminURL != "":
		cfg.Rotation.AdminURL = *f.adminURL
	case cfg.Rotation.AdminURL == "":
		cfg.Rotation.AdminURL = os.Getenv("PGROTATE_ADMIN_URL")
	}
	return cfg, nil
}

// databases lists the selected databases in name order.
func selectDatabases(cfg *configs.Config, only string) ([]*configs.Database, error) {
	var names []string
	for name := range cfg.Databases {
		names = append(names, name)
	}
	sort.Strings(names)
	if only != "" {
		if !slices.Contains(names, only) {
			return nil, fmt.Errorf("%w: unknown database %q", errUsage, only)
		}
		names = []string{only}
	}
	out := make([]*configs.Database, 0, len(names))
	for _, n := range names {
		out = append(out, cfg.Databases[n])
	}
	return out, nil
}

// forEachLifecycle runs fn with the Lifecycle of each selected database,
// stopping at the first error. Entries that share one role lifecycle (the
// same server database, owner role and credential source: a session-mode
// and a transaction-mode entry, say) run it once, for the first of them;
// a second run would rotate again and retire the role the first just made.
func forEachLifecycle(ctx context.Context, f *lifecycleFlags, io stdio, fn func(*rotation.Lifecycle) error) error {
	cfg, err := f.load()
	if err != nil {
		return err
	}
	dbs, err := selectDatabases(cfg, *f.database)
	if err != nil {
		return err
	}
	done := make(map[lifecycleKey]string)
	for _, db := range dbs {
		key := lifecycleKey{db.DBName, db.OwnerRole, db.Credentials.Path}
		if first, ok := done[key]; ok {
			fmt.Fprintf(io.out, "%s: same database, owner role and credential source as %s: done with it\n", db.Name, first)
			continue
		}
		done[key] = db.Name
		pool, err := rotation.OpenAdmin(ctx, cfg.Rotation.AdminURL, db.DBName)
		if err != nil {
			return err
		}
		l := rotation.NewLifecycle(cfg, db, pool)
		l.DryRun = *f.dryRun
		l.Report = func(line string) { fmt.Fprintln(io.out, line) }
		err = fn(l)
		pool.Close()
		if err != nil {
			return fmt.Errorf("database %s: %w", db.Name, err)
		}
	}
	return nil
}

// lifecycleKey identifies one role lifecycle: what Lifecycle acts on.
type lifecycleKey struct{ dbname, owner, credentials string }

// signalContext is ctx cancelled by SIGINT or SIGTERM; code reports which
// exit code the signal asks for (0 when none arrived).
func signalContext(ctx context.Context) (context.Context, func() int, func()) {
	ctx, cancel := context.WithCancel(ctx)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	got := make(chan int, 1)
	go func() {
		select {
		case s := <-sigs:
			code := exitForced
			if s == syscall.SIGINT {
				code = exitInterrupt
			}
			got <- code
			cancel()
		case <-ctx.Done():
		}
	}()
	code := func() int {
		select {
		case c := <-got:
			return c
		default:
			return 0
		}
	}
	stop := func() { signal.Stop(sigs); cancel() }
	return ctx, code, stop
}

// lifecycleExit maps a subcommand's error to its exit code.
func lifecycleExit(w io.Writer, err error, signalCode int) int {
	if err == nil {
		return exitOK
	}
	if signalCode != 0 {
		fmt.Fprintf(w, "pgrotate: interrupted: %v (a rerun finishes the job)\n", err)
		return signalCode
	}
	return fail(w, err)
}
