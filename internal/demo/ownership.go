package demo

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/pgrotate/pgrotate/internal/pgcluster"
)

// catalogFilter leaves out the system's own schemas: the catalogs, TOAST
// and the per-session temporary schemas, all owned by the bootstrap superuser.
const catalogFilter = `nspname NOT IN ('pg_catalog', 'information_schema')
  AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp\_%'`

// ownedObjectsSQL lists the relations (tables, sequences, indexes, views),
// functions and schemas of the current database with their owners.
const ownedObjectsSQL = `
SELECT kind, name, owner FROM (
  SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'S' THEN 'sequence'
                        WHEN 'i' THEN 'index' WHEN 'I' THEN 'index' WHEN 'v' THEN 'view'
                        WHEN 'm' THEN 'materialized view' ELSE 'relation' END,
         c.oid::regclass::text, pg_get_userbyid(c.relowner), n.nspname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  UNION ALL
  SELECT 'function', p.oid::regprocedure::text, pg_get_userbyid(p.proowner), n.nspname
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  UNION ALL
  SELECT 'schema', n.nspname, pg_get_userbyid(n.nspowner), n.nspname FROM pg_namespace n
) o(kind, name, owner, nspname)
WHERE ` + catalogFilter

// foreignOwned lists the objects of the demo database not owned by the
// owner role. pg_database_owner (the owner of schema public on PostgreSQL
// 15+) stands for the database's owner, which is the owner role.
func foreignOwned(ctx context.Context, c *pgcluster.Cluster) ([]string, error) {
	rows, err := c.QueryStrings(ctx, dbName,
		"SELECT kind, name, owner FROM ("+ownedObjectsSQL+") x WHERE owner NOT IN ($1, 'pg_database_owner') ORDER BY 1, 2",
		ownerRole)
	if err != nil {
		return nil, fmt.Errorf("listing objects not owned by %s: %w", ownerRole, err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s %s owned by %s", r[0], r[1], r[2]))
	}
	return out, nil
}

// ownedBy counts the objects of the demo database role owns.
func ownedBy(ctx context.Context, c *pgcluster.Cluster, role string) (int, error) {
	rows, err := c.QueryStrings(ctx, dbName, "SELECT count(*) FROM ("+ownedObjectsSQL+") x WHERE owner = $1", role)
	if err != nil {
		return 0, fmt.Errorf("counting objects owned by %s: %w", role, err)
	}
	return strconv.Atoi(rows[0][0])
}

// executingRoles lists the executing roles that exist.
func executingRoles(ctx context.Context, c *pgcluster.Cluster) ([]string, error) {
	rows, err := c.QueryStrings(ctx, "postgres",
		`SELECT rolname FROM pg_roles WHERE rolname LIKE 'bookstore\_user\_%' ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("listing executing roles: %w", err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r[0]
	}
	return out, nil
}

// sessionsByRole counts pg_stat_activity rows per executing role: the
// database-side truth of which roles are still in use.
func sessionsByRole(ctx context.Context, c *pgcluster.Cluster) ([][]string, error) {
	return c.QueryStrings(ctx, "postgres",
		`SELECT usename, count(*) FROM pg_stat_activity WHERE usename LIKE 'bookstore\_user\_%' GROUP BY 1 ORDER BY 1 DESC`)
}

// dropRole retires an executing role the way DESIGN.md §3.5 does. REASSIGN
// OWNED and DROP OWNED run in the demo database, where the role could own
// objects; DROP OWNED also revokes its CONNECT on the database (a shared
// object). With pgrotate in front, there is nothing to reassign.
func dropRole(ctx context.Context, c *pgcluster.Cluster, role string) error {
	id := pgx.Identifier{role}.Sanitize()
	for _, stmt := range []struct{ db, sql string }{
		{dbName, "REASSIGN OWNED BY " + id + " TO " + pgx.Identifier{ownerRole}.Sanitize()},
		{dbName, "DROP OWNED BY " + id},
		{"postgres", "DROP ROLE " + id},
	} {
		if err := c.Exec(ctx, stmt.db, stmt.sql); err != nil {
			return fmt.Errorf("dropping role %s: %w", role, err)
		}
	}
	return nil
}
