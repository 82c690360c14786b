// Command pgrotate is a PostgreSQL proxy and connection pooler whose reason to
// exist is credential rotation. See README.md; `pgrotate help` lists the
// subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Exit codes, as shells and orchestrators expect them.
const (
	exitOK        = 0
	exitFailure   = 1
	exitUsage     = 2
	exitInterrupt = 130 // SIGINT
	exitForced    = 143 // SIGTERM that could not drain in time
)

// command is one subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdio stdio) int
}

// stdio are the streams a subcommand may use, injectable for tests.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

func commands() []command {
	return []command{
		{"demo", "throwaway PostgreSQL + pgrotate + load + live rotations, in one command", runDemo},
		{"serve", "run the proxy: pgrotate serve -config pgrotate.yaml", runServe},
		{"passwd", "read a password on stdin, print a SCRAM-SHA-256 verifier for the config", runPasswd},
		{"setup", "create the owner role and the first executing role: pgrotate setup -config … -admin-url …", runSetup},
		{"rotate", "replace the executing role and drop the old one: pgrotate rotate -config … -admin-url …", runRotate},
		{"check", "report ownership drift and executing roles: pgrotate check -config … [-json]", runCheck},
	}
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], stdio{os.Stdin, os.Stdout, os.Stderr}))
}

func run(ctx context.Context, args []string, io stdio) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(io.out)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], io)
		}
	}
	fmt.Fprintf(io.err, "pgrotate: unknown command %q\n\n", args[0])
	usage(io.err)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "pgrotate: a PostgreSQL proxy that rotates database credentials without restarts.")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
}

// fail prints err for the operator and returns the exit code for it.
func fail(w io.Writer, err error) int {
	fmt.Fprintf(w, "pgrotate: %v\n", err)
	if errors.Is(err, errUsage) {
		return exitUsage
	}
	return exitFailure
}

var errUsage = errors.New("usage")
