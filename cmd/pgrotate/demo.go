package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgrotate/pgrotate/internal/demo"
)

// runDemo runs `pgrotate demo`: a throwaway PostgreSQL, pgrotate in front of
// it, an application workload and live credential rotations. Ctrl-C ends it
// early and still prints the summary.
func runDemo(ctx context.Context, args []string, io stdio) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.err)
	var cfg demo.Config
	fs.DurationVar(&cfg.Duration, "duration", demo.DefaultDuration, "how long the workload and the rotations run")
	fs.DurationVar(&cfg.Every, "every", demo.DefaultEvery, "time between two rotations of the executing role")
	fs.IntVar(&cfg.Clients, "clients", demo.DefaultClients, "concurrent transaction workers (1-64)")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "no live view, print the summary only")
	fs.Usage = func() {
		fmt.Fprintln(io.err, "usage: pgrotate demo [flags]")
		fmt.Fprintln(io.err, "\nStarts a throwaway PostgreSQL cluster from the server binaries on this machine, puts")
		fmt.Fprintln(io.err, "pgrotate in front of it, runs an application workload through pgrotate and rotates the")
		fmt.Fprintln(io.err, "executing role on a schedule, then prints a summary. It leaves nothing behind.")
		fmt.Fprintln(io.err, "Exit status 0 when no transaction failed and every rotation completed.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if err := checkDemoFlags(fs, cfg); err != nil {
		fmt.Fprintf(io.err, "pgrotate demo: %v\n", err)
		return exitUsage
	}
	cfg.Live = isTerminal(io.out)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := demo.Run(ctx, cfg, io.out)
	if err != nil {
		return fail(io.err, err)
	}
	if !sum.OK() {
		return exitFailure
	}
	return exitOK
}

// isTerminal reports whether w is a terminal, where the live view may
// redraw itself in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// checkDemoFlags rejects what demo.Config would otherwise take as "use the
// default": a zero the user typed is a mistake, not a request for 30s.
func checkDemoFlags(fs *flag.FlagSet, cfg demo.Config) error {
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case cfg.Duration <= 0:
		return errors.New("-duration must be positive")
	case cfg.Every <= 0:
		return errors.New("-every must be positive")
	case cfg.Clients < 1:
		return errors.New("-clients must be at least 1")
	}
	return nil
}
