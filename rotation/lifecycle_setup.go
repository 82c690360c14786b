package rotation

import (
	"context"
	"fmt"
)

// SetupResult says what Setup did and found.
type SetupResult struct {
	// OwnerCreated: the owner role did not exist. OwnerOfDatabase: the
	// database's owner was changed to it.
	OwnerCreated, OwnerOfDatabase bool
	// Moved are the objects handed to the owner (with moveObjects);
	// NotOwned those left as they were (without it).
	Moved, NotOwned []Object
	// Role is what happened to the executing role, as Rotate reports it.
	Role RotateResult
}

// Setup prepares the database for pgrotate, idempotently: the owner role
// (NOLOGIN) exists and owns the database; with moveObjects every object it
// does not own is handed to it; the first executing role exists and the
// credential file names it. It reports each thing it did and each thing it
// found already done. Older executing roles are left for Rotate.
func (l *Lifecycle) Setup(ctx context.Context, moveObjects bool) (SetupResult, error) {
	var res SetupResult
	var err error
	if res.OwnerCreated, err = l.ensureOwner(ctx); err != nil {
		return res, err
	}
	if res.OwnerOfDatabase, err = l.ensureDatabaseOwner(ctx); err != nil {
		return res, err
	}
	if res.Moved, res.NotOwned, err = l.ensureObjectsOwned(ctx, moveObjects); err != nil {
		return res, err
	}
	p, _, err := l.derivePlan(ctx, false)
	if err != nil {
		return res, err
	}
	res.Role.Current = p.target
	if !p.write {
		l.say("already done: %s names executing role %s", l.Credentials, p.target)
		if len(p.retire) > 0 {
			l.say("found older executing roles %v: pgrotate rotate retires them", p.retire)
		}
		return res, nil
	}
	if l.DryRun {
		l.reportPlan(plan{target: p.target, create: p.create, reset: p.reset, write: true})
		return res, nil
	}
	return res, l.switchTo(ctx, p, &res.Role)
}

// ensureOwner creates the owner role NOLOGIN when it is missing.
func (l *Lifecycle) ensureOwner(ctx context.Context) (bool, error) {
	var exists bool
	err := l.Admin.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", l.Owner).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("looking up the owner role: %w", err)
	}
	if exists {
		l.say("already done: owner role %s exists", l.Owner)
		return false, nil
	}
	if l.DryRun {
		l.say("plan: create owner role %s NOLOGIN", l.Owner)
		return false, nil
	}
	if _, err := l.Admin.Exec(ctx, "CREATE ROLE "+ident(l.Owner)+" NOLOGIN"); err != nil {
		return false, fmt.Errorf("creating the owner role: %w", err)
	}
	l.say("created owner role %s (NOLOGIN)", l.Owner)
	return true, nil
}

// ensureDatabaseOwner makes the owner role own the database.
func (l *Lifecycle) ensureDatabaseOwner(ctx context.Context) (bool, error) {
	var current string
	err := l.Admin.QueryRow(ctx, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()").Scan(&current)
	if err != nil {
		return false, fmt.Errorf("looking up the database owner: %w", err)
	}
	if current == l.Owner {
		l.say("already done: %s owns database %s", l.Owner, l.DBName)
		return false, nil
	}
	if l.DryRun {
		l.say("plan: make %s own database %s (now %s)", l.Owner, l.DBName, current)
		return false, nil
	}
	if _, err := l.Admin.Exec(ctx, "ALTER DATABASE "+ident(l.DBName)+" OWNER TO "+ident(l.Owner)); err != nil {
		return false, fmt.Errorf("making %s own the database: %w", l.Owner, err)
	}
	l.say("made %s own database %s (was %s)", l.Owner, l.DBName, current)
	return true, nil
}

// ensureObjectsOwned moves (move) or reports the objects the owner does not
// own.
func (l *Lifecycle) ensureObjectsOwned(ctx context.Context, move bool) (moved, left []Object, err error) {
	objs, err := objectsNotOwnedBy(ctx, l.Admin, l.Owner)
	if err != nil {
		return nil, nil, err
	}
	if len(objs) == 0 {
		l.say("already done: %s owns every object in %s", l.Owner, l.DBName)
		return nil, nil, nil
	}
	if !move || l.DryRun {
		for _, o := range objs {
			l.say("found %s %s owned by %s, not %s", o.Kind, o.Name, o.Owner, l.Owner)
		}
		if !move {
			l.say("left %d object(s) as they are: run setup with -reassign-objects to hand them to %s", len(objs), l.Owner)
		}
		return nil, objs, nil
	}
	for _, o := range objs {
		if _, err := l.Admin.Exec(ctx, alterOwnerSQL(o, l.Owner)); err != nil {
			return moved, nil, fmt.Errorf("handing %s %s to %s: %w", o.Kind, o.Name, l.Owner, err)
		}
		l.say("moved %s %s from %s to %s", o.Kind, o.Name, o.Owner, l.Owner)
		moved = append(moved, o)
	}
	return moved, nil, nil
}
