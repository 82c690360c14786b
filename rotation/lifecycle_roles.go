package rotation

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier is what pgx.Conn, pgx.Tx and pgxpool.Pool share for reading.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ExecRole is one executing role of an owner as the catalog shows it.
type ExecRole struct {
	Name    string
	Seq     int  // the NNNN of <prefix>_<NNNN>
	Member  bool // a member of the owner role
	Login   bool
	Inherit bool
	// Created is when pgrotate created it (from the role's comment); zero
	// for a role made by hand.
	Created time.Time
}

// roleSeqDigits is the width of the sequence number in role names.
const roleSeqDigits = 4

// rolePattern matches <prefix>_<NNNN> and captures NNNN.
func rolePattern(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `_([0-9]{` + strconv.Itoa(roleSeqDigits) + `,})$`)
}

// roleName is the executing role with sequence number seq.
func roleName(prefix string, seq int) string {
	return fmt.Sprintf("%s_%0*d", prefix, roleSeqDigits, seq)
}

// createdComment is the comment pgrotate puts on each role it creates; the
// scheduler reads the time back to decide whether a rotation is due.
func createdComment(owner string, at time.Time) string {
	return "pgrotate: executing role of " + owner + ", created " + at.UTC().Format(time.RFC3339)
}

var createdPattern = regexp.MustCompile(`created (\S+)$`)

// listExecRoles lists every role named like an executing role of owner,
// ordered by sequence number. Those that are not members of owner are kept
// in the list (Member false) so that a new name never collides with them.
func listExecRoles(ctx context.Context, q Querier, owner, prefix string) ([]ExecRole, error) {
	rows, err := q.Query(ctx, `
		SELECT r.rolname, r.rolcanlogin, r.rolinherit,
		       EXISTS (SELECT FROM pg_auth_members m JOIN pg_roles o ON o.oid = m.roleid
		                WHERE m.member = r.oid AND o.rolname = $1),
		       coalesce(shobj_description(r.oid, 'pg_authid'), '')
		  FROM pg_roles r
		 WHERE starts_with(r.rolname, $2)`, owner, prefix+"_")
	if err != nil {
		return nil, fmt.Errorf("listing executing roles: %w", err)
	}
	defer rows.Close()
	pat := rolePattern(prefix)
	var out []ExecRole
	for rows.Next() {
		var r ExecRole
		var comment string
		if err := rows.Scan(&r.Name, &r.Login, &r.Inherit, &r.Member, &comment); err != nil {
			return nil, fmt.Errorf("listing executing roles: %w", err)
		}
		m := pat.FindStringSubmatch(r.Name)
		if m == nil {
			continue
		}
		r.Seq, _ = strconv.Atoi(m[1])
		if c := createdPattern.FindStringSubmatch(comment); c != nil && strings.HasPrefix(comment, "pgrotate:") {
			r.Created, _ = time.Parse(time.RFC3339, c[1])
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing executing roles: %w", err)
	}
	slices.SortFunc(out, func(a, b ExecRole) int { return a.Seq - b.Seq })
	return out, nil
}

// members keeps the roles that are members of the owner.
func members(roles []ExecRole) []ExecRole {
	return slices.DeleteFunc(slices.Clone(roles), func(r ExecRole) bool { return !r.Member })
}

// sessions counts the sessions of role in the whole cluster, across every
// pgrotate replica and every database (DESIGN.md §2 fact 5), leaving out
// the caller's own.
func sessions(ctx context.Context, q Querier, role string) (int, error) {
	var n int
	err := q.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()", role).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting sessions of %s: %w", role, err)
	}
	return n, nil
}
