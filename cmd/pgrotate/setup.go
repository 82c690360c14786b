package main

import (
	"context"

	"github.com/pgrotate/pgrotate/rotation"
)

// runSetup prepares each configured database for pgrotate: the owner role,
// its ownership of the database (and, with -reassign-objects, of every
// object), the first executing role and its credential file. Idempotent: a
// rerun prints what it found already done.
func runSetup(ctx context.Context, args []string, io stdio) int {
	f := newLifecycleFlags("setup", io.err)
	move := f.fs.Bool("reassign-objects", false, "hand every object the owner role does not own to it, reporting each")
	if err := f.fs.Parse(args); err != nil {
		return exitUsage
	}
	ctx, signalCode, stop := signalContext(ctx)
	defer stop()
	err := forEachLifecycle(ctx, f, io, func(l *rotation.Lifecycle) error {
		_, err := l.Setup(ctx, *move)
		return err
	})
	return lifecycleExit(io.err, err, signalCode())
}
