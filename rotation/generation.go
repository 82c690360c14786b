package rotation

import (
	"context"
	"time"
)

// Generation is one promoted credential. N starts at 1 and only grows; the
// proxy stamps each server connection with the N it logged in with, so it
// knows which connections to drain after a rotation.
type Generation struct {
	N          uint64
	Cred       Credential
	PromotedAt time.Time
}

// ValidateFunc checks a candidate by logging in with it. The proxy supplies
// it: it dials the upstream as c with the startup option -c role=<owner> and
// runs CheckSession. It must honour ctx, which is cancelled when a newer
// candidate supersedes c.
type ValidateFunc func(ctx context.Context, c Credential) error

// ManagerStats is a snapshot for /status and metrics.
type ManagerStats struct {
	// Generation is the current generation's N, 0 before the first promotion.
	Generation uint64
	// Role is the current generation's executing role.
	Role string
	// ValidationFailures counts rejected validation attempts since start.
	ValidationFailures uint64
	// LastFailure is the reason of the most recent rejection, "" if none.
	LastFailure   string
	LastFailureAt time.Time
	// Pending reports a candidate offered but not yet promoted, such as one
	// being retried; PendingRole is its executing role.
	Pending     bool
	PendingRole string
}
