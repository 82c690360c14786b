package main

import (
	"context"

	"github.com/pgrotate/pgrotate/rotation"
)

// runRotate replaces the executing role of each configured database (or of
// -database): a new role, the credential file naming it, then the old role
// retired once no session of it is left. A run that was interrupted is
// finished by the next one.
func runRotate(ctx context.Context, args []string, io stdio) int {
	f := newLifecycleFlags("rotate", io.err)
	if err := f.fs.Parse(args); err != nil {
		return exitUsage
	}
	ctx, signalCode, stop := signalContext(ctx)
	defer stop()
	err := forEachLifecycle(ctx, f, io, func(l *rotation.Lifecycle) error {
		_, err := l.Rotate(ctx)
		return err
	})
	return lifecycleExit(io.err, err, signalCode())
}
