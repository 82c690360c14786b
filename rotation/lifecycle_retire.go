package rotation

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultPollEvery is how often pg_stat_activity is polled during a drain.
const defaultPollEvery = 200 * time.Millisecond

// retireAll runs steps 3–6 for every role the plan retires, oldest first,
// within one DrainWait.
func (l *Lifecycle) retireAll(ctx context.Context, p plan, res *RotateResult) error {
	if len(p.keep) > 0 {
		l.say("keeping %v (keep_previous=%d)", p.keep, l.KeepPrevious)
	}
	if len(p.retire) == 0 {
		return nil
	}
	if err := l.settle(ctx); err != nil {
		return err
	}
	deadline := l.now().Add(l.DrainWait)
	for _, role := range p.retire {
		objs, err := l.retire(ctx, role, deadline)
		if err != nil {
			return err
		}
		if res.Reassigned == nil {
			res.Reassigned = map[string][]Object{}
		}
		res.Reassigned[role] = objs
		res.Retired = append(res.Retired, role)
	}
	return nil
}

// retire waits for role's sessions to end, makes it NOLOGIN, hands what it
// owns to the owner, and drops it.
func (l *Lifecycle) retire(ctx context.Context, role string, deadline time.Time) ([]Object, error) {
	if err := l.waitNoSessions(ctx, role, deadline); err != nil {
		return nil, err
	}
	if err := l.stop(StepDrain); err != nil {
		return nil, err
	}
	if _, err := l.Admin.Exec(ctx, "ALTER ROLE "+ident(role)+" NOLOGIN"); err != nil {
		return nil, fmt.Errorf("making %s NOLOGIN: %w", role, err)
	}
	l.say("%s: no session left; made NOLOGIN", role)
	if err := l.stop(StepNoLogin); err != nil {
		return nil, err
	}
	// A replica that had not seen the new file yet may have logged in
	// between the count and NOLOGIN; NOLOGIN ends no session (DESIGN.md §2
	// fact 5), so look again.
	if err := l.waitNoSessions(ctx, role, deadline); err != nil {
		return nil, err
	}
	objs, err := l.reassign(ctx, role)
	if err != nil {
		return nil, err
	}
	if err := l.stop(StepReassign); err != nil {
		return objs, err
	}
	if _, err := l.Admin.Exec(ctx, "DROP ROLE IF EXISTS "+ident(role)); err != nil {
		return objs, fmt.Errorf("dropping %s (it may own objects or hold privileges in another database: run REASSIGN OWNED and DROP OWNED there): %w", role, err)
	}
	l.say("dropped %s", role)
	return objs, l.stop(StepDrop)
}

// reassign lists what role owns, then hands it to the owner and drops its
// privileges (its CONNECT grant included, so DROP ROLE can succeed).
// REASSIGN OWNED and DROP OWNED act on the current database and shared
// objects only: objects the role owns in other databases are not reached.
func (l *Lifecycle) reassign(ctx context.Context, role string) ([]Object, error) {
	objs, err := objectsOwnedBy(ctx, l.Admin, role)
	if err != nil {
		return nil, err
	}
	err = pgx.BeginFunc(ctx, l.Admin, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "REASSIGN OWNED BY "+ident(role)+" TO "+ident(l.Owner)); err != nil {
			return fmt.Errorf("reassigning what %s owns to %s: %w", role, l.Owner, err)
		}
		if _, err := tx.Exec(ctx, "DROP OWNED BY "+ident(role)); err != nil {
			return fmt.Errorf("dropping the privileges of %s: %w", role, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		l.say("%s: reassigned %s %s to %s", role, o.Kind, o.Name, l.Owner)
	}
	l.say("%s: reassigned %d object(s) to %s and dropped its privileges", role, len(objs), l.Owner)
	return objs, nil
}

// settle waits until Settle has passed since the credential was written.
func (l *Lifecycle) settle(ctx context.Context) error {
	written, err := writtenAt(l.Credentials)
	if err != nil {
		return err
	}
	wait := written.Add(l.Settle).Sub(l.now())
	if wait <= 0 {
		return nil
	}
	l.say("waiting %v for every pgrotate to read the new credential", wait.Round(time.Millisecond))
	select {
	case <-ctx.Done():
		return fmt.Errorf("waiting for the credential to settle: %w", ctx.Err())
	case <-time.After(wait):
		return nil
	}
}

// writtenAt is when the credential at path was last written: the newest
// modification time of the file, or of a directory's username and password
// (through the ..data link of a Kubernetes volume).
func writtenAt(path string) (time.Time, error) {
	info, err := os.Stat(path)
	if err != nil {
		return time.Time{}, fsError(path, err)
	}
	if !info.IsDir() {
		return info.ModTime(), nil
	}
	var latest time.Time
	for _, key := range []string{"username", "password"} {
		if fi, err := os.Stat(filepath.Join(path, key)); err == nil && fi.ModTime().After(latest) {
			latest = fi.ModTime()
		}
	}
	return latest, nil
}

// waitNoSessions polls pg_stat_activity until role has no session, or
// returns ErrDrainTimeout at deadline.
func (l *Lifecycle) waitNoSessions(ctx context.Context, role string, deadline time.Time) error {
	every := l.PollEvery
	if every <= 0 {
		every = defaultPollEvery
	}
	reported := false
	for {
		n, err := sessions(ctx, l.Admin, role)
		if err != nil || n == 0 {
			return err
		}
		if l.now().After(deadline) {
			return fmt.Errorf("%w: %s has %d session(s) after drain_wait %v; nothing was dropped, rerun to finish",
				ErrDrainTimeout, role, n, l.DrainWait)
		}
		if !reported {
			l.say("waiting for %d session(s) of %s to end", n, role)
			reported = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the sessions of %s: %w", role, ctx.Err())
		case <-time.After(every):
		}
	}
}
