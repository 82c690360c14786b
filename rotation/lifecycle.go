package rotation

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The role lifecycle (DESIGN.md §3.5): pgrotate creates, hands out and drops
// the executing roles itself when given an admin connection.
//
// Crash safety. The database and the credential file are the only state;
// nothing is remembered between runs. A rotation is six steps:
//
//  1. the next executing role exists, with its attributes and a password
//     (only its SCRAM verifier is sent);
//  2. the credential file names it (written atomically);
//  3. every replica had the time to read the file (Settle), and no session
//     of an older executing role is left in pg_stat_activity;
//  4. the older role is NOLOGIN;
//  5. whatever it owns is reassigned to the owner, its privileges dropped;
//  6. it is dropped.
//
// Each run first derives where it stands from the executing roles (members
// of the owner named <prefix>_<NNNN>) and the role the file names:
//
//   - a role newer than the file's exists: step 1 was done, step 2 was not.
//     Nobody can be using that role (no file names it), so its password is
//     reset to a new one and the run resumes at step 2 with it;
//   - the file names the newest role and older ones exist beyond
//     keep_previous: the run resumes at step 3 for each of them (this also
//     clears orphans left by any earlier crash);
//   - the file names the newest role and nothing is pending: a rotation
//     starts at step 1 with a new role (setup stops here: nothing to do);
//   - the file names no executing role (missing, unreadable, hand-written):
//     a new role is created at step 1; the older ones are retired after
//     the file names the new one.
//
// Every step is idempotent (step 1 runs in one transaction; a NOLOGIN role
// is left NOLOGIN; REASSIGN/DROP OWNED on a role that owns nothing is a
// no-op), so killing a run at any point and running it again converges to
// one current executing role (plus keep_previous), a file that names it, and
// no orphaned role.

// Step is one step of a rotation, numbered as in the crash-safety comment
// above. Its only use outside this package is [Lifecycle.StopAfter], a test
// hook.
type Step int

// The steps of a rotation.
const (
	StepNone Step = iota
	StepCreateRole
	StepWriteCredential
	StepDrain
	StepNoLogin
	StepReassign
	StepDrop
)

// String names the step for reports.
func (s Step) String() string {
	switch s {
	case StepCreateRole:
		return "create role"
	case StepWriteCredential:
		return "write credential"
	case StepDrain:
		return "wait for drain"
	case StepNoLogin:
		return "nologin"
	case StepReassign:
		return "reassign owned"
	case StepDrop:
		return "drop role"
	}
	return "none"
}

// ErrStopped is returned when [Lifecycle.StopAfter] stopped a run on purpose.
var ErrStopped = errors.New("stopped after the requested step (test hook)")

// ErrDrainTimeout is returned when sessions of an old executing role were
// still open after DrainWait. Nothing was dropped; a rerun finishes the job.
var ErrDrainTimeout = errors.New("old executing role still has sessions")

// Lifecycle creates, hands out and retires the executing roles of one
// database. Its fields are set once; its methods derive everything else from
// the database and the credential file on every call.
type Lifecycle struct {
	// Admin is a pool connected to DBName as a role that may create, grant
	// and drop the executing roles (REASSIGN/DROP OWNED act on the current
	// database, so it must be this one).
	Admin *pgxpool.Pool
	// DBName is the database; Owner its NOLOGIN owner role.
	DBName, Owner string
	// Prefix names the executing roles <Prefix>_<NNNN>; "" means
	// DefaultRolePrefix(Owner).
	Prefix string
	// Credentials is the credential source pgrotate serve reads, Format its
	// layout.
	Credentials string
	Format      Format
	// Upstream gives host, port and dbname for a credential file that does
	// not exist yet (a URL file needs them); existing files keep theirs.
	Upstream Credential
	// KeepPrevious is how many older executing roles are kept.
	KeepPrevious int
	// Settle is the least time between writing the credential and retiring
	// an old role, measured from the file's modification time (so a rerun
	// honours it too). pg_stat_activity alone cannot tell "moved to the new
	// role" from "has not read the new file yet and holds no connection of
	// the old one at this instant"; a replica that has not read the file
	// would open its next connection as a role about to be dropped. Every
	// pgrotate re-reads its source within credentials.poll_interval, so
	// NewLifecycle sets twice that.
	Settle time.Duration
	// DrainWait bounds the wait for an old role's sessions to end, after
	// Settle.
	DrainWait time.Duration
	// ValidUntil, when positive, sets VALID UNTIL now+ValidUntil on new roles.
	ValidUntil time.Duration
	// DryRun prints the plan and changes nothing.
	DryRun bool
	// StopAfter stops a run with ErrStopped right after that step (tests).
	StopAfter Step
	// Report receives one line per action taken or found done; nil discards.
	Report func(line string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// PollEvery is how often pg_stat_activity is polled; 0 means 200ms.
	PollEvery time.Duration
}

// DefaultRolePrefix is the executing-role prefix for owner:
// bookstore_owner → bookstore_user (roles bookstore_user_0001, …).
func DefaultRolePrefix(owner string) string {
	return strings.TrimSuffix(owner, "_owner") + "_user"
}

func (l *Lifecycle) prefix() string {
	if l.Prefix != "" {
		return l.Prefix
	}
	return DefaultRolePrefix(l.Owner)
}

func (l *Lifecycle) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Lifecycle) say(format string, args ...any) {
	if l.Report != nil {
		l.Report(l.DBName + ": " + fmt.Sprintf(format, args...))
	}
}

// stop reports whether the StopAfter hook ends the run after s.
func (l *Lifecycle) stop(s Step) error {
	if l.StopAfter == s && s != StepNone {
		return fmt.Errorf("after step %d (%s): %w", s, s, ErrStopped)
	}
	return nil
}
