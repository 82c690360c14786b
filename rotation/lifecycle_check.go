package rotation

import (
	"context"
	"fmt"
)

// CheckReport is what `pgrotate check` finds for one database.
type CheckReport struct {
	Database string `json:"database"`
	Owner    string `json:"owner_role"`
	// CurrentRole is the executing role the credential source names.
	CurrentRole string `json:"current_role"`
	// SessionUser and CurrentUser are what a session logged in with the
	// current credential reports; ActsAsOwner is CurrentUser == Owner.
	SessionUser string `json:"session_user"`
	CurrentUser string `json:"current_user"`
	ActsAsOwner bool   `json:"acts_as_owner"`
	// NotOwned are the objects the owner role does not own.
	NotOwned []Object `json:"objects_not_owned_by_owner"`
	// Roles are the executing roles of the owner.
	Roles []RoleReport `json:"executing_roles"`
	// Problems are what needs attention, one sentence each; empty when
	// everything is as pgrotate expects.
	Problems []string `json:"problems"`
}

// RoleReport is one executing role as check sees it.
type RoleReport struct {
	Name     string `json:"name"`
	Current  bool   `json:"current"`
	Login    bool   `json:"login"`
	Inherit  bool   `json:"inherit"`
	Sessions int    `json:"sessions"`
}

// NeedsAttention reports whether the database has a problem.
func (r *CheckReport) NeedsAttention() bool { return len(r.Problems) > 0 }

// Problem records one thing that needs attention.
func (r *CheckReport) Problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Inspect fills r (Database, Owner and CurrentRole set by the caller) from
// q, a session logged in with the current credential: whether it acts as
// the owner, the objects the owner does not own, and the executing roles
// named <prefix>_<NNNN> ("" for the default prefix) with their sessions.
// More than keepPrevious roles besides the current one, or any INHERIT one,
// is a problem. It needs no privilege beyond reading the catalogs.
func Inspect(ctx context.Context, q Querier, r *CheckReport, prefix string, keepPrevious int) error {
	if prefix == "" {
		prefix = DefaultRolePrefix(r.Owner)
	}
	if err := q.QueryRow(ctx, "SELECT session_user, current_user").Scan(&r.SessionUser, &r.CurrentUser); err != nil {
		return fmt.Errorf("reading session_user and current_user: %w", err)
	}
	r.ActsAsOwner = r.CurrentUser == r.Owner
	if !r.ActsAsOwner {
		r.Problem("a session of %s acts as %s, not as the owner role %s", r.SessionUser, r.CurrentUser, r.Owner)
	}
	var err error
	if r.NotOwned, err = objectsNotOwnedBy(ctx, q, r.Owner); err != nil {
		return err
	}
	if n := len(r.NotOwned); n > 0 {
		r.Problem("%d object(s) not owned by %s (REASSIGN OWNED, or pgrotate setup -reassign-objects)", n, r.Owner)
	}
	return inspectRoles(ctx, q, r, prefix, keepPrevious)
}

// inspectRoles reports the executing roles and their sessions.
func inspectRoles(ctx context.Context, q Querier, r *CheckReport, prefix string, keepPrevious int) error {
	roles, err := listExecRoles(ctx, q, r.Owner, prefix)
	if err != nil {
		return err
	}
	others, currentFound := 0, false
	for _, er := range members(roles) {
		rr := RoleReport{Name: er.Name, Current: er.Name == r.CurrentRole, Login: er.Login, Inherit: er.Inherit}
		if rr.Sessions, err = sessions(ctx, q, er.Name); err != nil {
			return err
		}
		if rr.Inherit {
			r.Problem("executing role %s is INHERIT: a session that escapes the owner role keeps its privileges (ALTER ROLE %s NOINHERIT)", er.Name, er.Name)
		}
		if rr.Current {
			currentFound = true
		} else {
			others++
		}
		r.Roles = append(r.Roles, rr)
	}
	if !currentFound {
		r.Problem("the credential names %s, which is not an executing role of %s named %s_NNNN", r.CurrentRole, r.Owner, prefix)
	}
	if others > keepPrevious {
		r.Problem("%d executing role(s) besides the current one (keep_previous=%d): pgrotate rotate retires them", others, keepPrevious)
	}
	return nil
}
