package rotation

import (
	"context"
	"fmt"
	"strings"
)

// RotateResult says what a rotate (or setup) run did.
type RotateResult struct {
	// Current is the executing role the credential file names at the end.
	Current string
	// Created is the role this run created ("" if none); Reset a role
	// created by an interrupted run whose password this run replaced.
	Created, Reset string
	// Resumed is true when the run finished an interrupted one instead of
	// starting a new rotation.
	Resumed bool
	// Retired are the roles dropped, Kept the older roles kept.
	Retired, Kept []string
	// Reassigned lists, per retired role, the objects it owned that were
	// handed to the owner before the drop.
	Reassigned map[string][]Object
}

// Rotate runs one rotation: a new executing role, the credential file
// naming it, then the older roles retired once their sessions are gone. A
// run that finds an interrupted one finishes it instead (see the
// crash-safety comment in lifecycle.go). With DryRun it only reports the
// plan.
func (l *Lifecycle) Rotate(ctx context.Context) (RotateResult, error) {
	p, _, err := l.derivePlan(ctx, true)
	if err != nil {
		return RotateResult{}, err
	}
	res := RotateResult{Current: p.target, Resumed: p.pending, Kept: p.keep}
	if l.DryRun {
		l.reportPlan(p)
		return res, nil
	}
	if p.pending {
		l.say("resuming an interrupted rotation: %s is current", p.target)
	}
	if err := l.switchTo(ctx, p, &res); err != nil {
		return res, err
	}
	if err := l.retireAll(ctx, p, &res); err != nil {
		return res, err
	}
	if p.pending && res.Created == "" {
		l.say("finished the interrupted rotation to %s; no new role was made: run rotate again to rotate", p.target)
	}
	return res, nil
}

// switchTo runs steps 1 and 2: the target role exists with a fresh
// password, and the file names it.
func (l *Lifecycle) switchTo(ctx context.Context, p plan, res *RotateResult) error {
	if !p.write {
		return nil
	}
	password, err := newPassword()
	if err != nil {
		return err
	}
	if err := l.ensureExecRole(ctx, p.target, password, p.reset); err != nil {
		return err
	}
	if p.reset {
		res.Reset = p.target
		l.say("reset the password of %s (created by an interrupted run)", p.target)
	} else {
		res.Created = p.target
		l.say("created executing role %s (LOGIN NOINHERIT, member of %s)", p.target, l.Owner)
	}
	if err := l.stop(StepCreateRole); err != nil {
		return err
	}
	cred := l.Upstream
	if p.fileOK {
		cred = p.file // keep host, port, dbname the file already says
	}
	cred.Username, cred.Password = p.target, password
	if err := WriteCredential(l.Credentials, l.Format, cred); err != nil {
		return fmt.Errorf("writing the credential of %s: %w", p.target, err)
	}
	l.say("wrote %s naming %s", l.Credentials, p.target)
	return l.stop(StepWriteCredential)
}

// reportPlan prints what a run would do.
func (l *Lifecycle) reportPlan(p plan) {
	if !p.changes() {
		l.say("plan: nothing to do; %s is current", p.target)
		return
	}
	switch {
	case p.create:
		l.say("plan: create executing role %s (LOGIN NOINHERIT, member of %s, password sent as a SCRAM verifier)", p.target, l.Owner)
	case p.reset:
		l.say("plan: reset the password of %s, created by an interrupted run", p.target)
	}
	if p.write {
		l.say("plan: write %s naming %s", l.Credentials, p.target)
	}
	if len(p.retire) > 0 {
		l.say("plan: wait %v after the credential is written, then until %s have no session, then NOLOGIN, REASSIGN OWNED TO %s, DROP OWNED, DROP ROLE",
			l.Settle, strings.Join(p.retire, ", "), l.Owner)
	}
	if len(p.keep) > 0 {
		l.say("plan: keep %s (keep_previous=%d)", strings.Join(p.keep, ", "), l.KeepPrevious)
	}
}
