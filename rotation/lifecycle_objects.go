package rotation

import (
	"context"
	"fmt"
	"strings"
)

// Object is a database object as the ownership reports name it.
type Object struct {
	// Kind is "table", "view", "sequence", "function", "type", "schema",
	// "large object", "server", …: as ALTER … OWNER TO names it.
	Kind string `json:"kind"`
	// Name is schema-qualified and quoted by the server (quote_ident; a
	// routine with its argument types), ready for ALTER … OWNER TO.
	Name string `json:"name"`
	// Owner is the role owning it.
	Owner string `json:"owner"`
}

// objectsSQL lists the user objects of the current database with their
// owners: relations, routines, standalone types, schemas, collations,
// conversions, operators, extended statistics and text search
// configurations and dictionaries outside the system schemas, and the
// database's large objects, publications and foreign servers, leaving out
// what follows another object's owner (indexes, TOAST tables, a table's row
// type and array types, serial and identity sequences) and members of
// extensions. Foreign-data wrappers and event triggers are left out: only a
// superuser may own them. Owner filtering is left to the callers' WHERE on
// owner_oid.
var objectsSQL = `
WITH user_ns AS (
  SELECT oid, nspname, nspowner FROM pg_namespace
   WHERE nspname NOT IN ('pg_catalog', 'information_schema')
     AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp\_%'
), ext AS (
  SELECT classid, objid FROM pg_depend WHERE deptype = 'e'
), objects AS (
  SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                        WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
                        WHEN 'c' THEN 'type' ELSE 'table' END AS kind,
         quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name, c.relowner AS owner_oid
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
     AND NOT EXISTS (SELECT FROM ext WHERE classid = 'pg_class'::regclass AND objid = c.oid)
     AND NOT EXISTS (SELECT FROM pg_depend d
                      WHERE c.relkind = 'S' AND d.classid = 'pg_class'::regclass AND d.objid = c.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
  UNION ALL
  SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
         quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')', p.proowner
    FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
   WHERE NOT EXISTS (SELECT FROM ext WHERE classid = 'pg_proc'::regclass AND objid = p.oid)
  UNION ALL
  SELECT CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END, quote_ident(n.nspname) || '.' || quote_ident(t.typname), t.typowner
    FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace
   WHERE t.typtype IN ('e', 'r', 'd')
     AND NOT EXISTS (SELECT FROM ext WHERE classid = 'pg_type'::regclass AND objid = t.oid)
  UNION ALL
  SELECT 'schema', quote_ident(n.nspname), n.nspowner FROM user_ns n
   WHERE NOT EXISTS (SELECT FROM ext WHERE classid = 'pg_namespace'::regclass AND objid = n.oid)
  UNION ALL
  SELECT 'operator', quote_ident(n.nspname) || '.' || o.oprname || ' (' ||
         CASE o.oprleft WHEN 0 THEN 'NONE' ELSE format_type(o.oprleft, NULL) END || ', ' ||
         format_type(o.oprright, NULL) || ')', o.oprowner
    FROM pg_operator o JOIN user_ns n ON n.oid = o.oprnamespace
   WHERE NOT EXISTS (SELECT FROM ext WHERE classid = 'pg_operator'::regclass AND objid = o.oid)
  UNION ALL
  SELECT 'large object', m.oid::text, m.lomowner FROM pg_largeobject_metadata m
  UNION ALL
  SELECT 'publication', quote_ident(p.pubname), p.pubowner FROM pg_publication p
   WHERE NOT EXISTS (SELECT FROM ext WHERE classid = 'pg_publication'::regclass AND objid = p.oid)
  UNION ALL
  SELECT 'server', quote_ident(s.srvname), s.srvowner FROM pg_foreign_server s
   WHERE NOT EXISTS (SELECT FROM ext WHERE classid = 'pg_foreign_server'::regclass AND objid = s.oid)
` + namespacedObjectsSQL() + `)
SELECT o.kind, o.name, pg_get_userbyid(o.owner_oid) FROM objects o `

// namespacedObjects are the kinds of schema object objectsSQL lists from a
// catalog of their own, where the row names the object, its schema and its
// owner: each is one more arm of the union.
var namespacedObjects = []struct{ kind, catalog, name, schema, owner string }{
	{"collation", "pg_collation", "collname", "collnamespace", "collowner"},
	{"conversion", "pg_conversion", "conname", "connamespace", "conowner"},
	{"statistics", "pg_statistic_ext", "stxname", "stxnamespace", "stxowner"},
	{"text search configuration", "pg_ts_config", "cfgname", "cfgnamespace", "cfgowner"},
	{"text search dictionary", "pg_ts_dict", "dictname", "dictnamespace", "dictowner"},
}

// namespacedObjectsSQL is objectsSQL's arms for namespacedObjects.
func namespacedObjectsSQL() string {
	var b strings.Builder
	for _, k := range namespacedObjects {
		fmt.Fprintf(&b, `  UNION ALL
  SELECT '%s', quote_ident(n.nspname) || '.' || quote_ident(x.%s), x.%s
    FROM %s x JOIN user_ns n ON n.oid = x.%s
   WHERE NOT EXISTS (SELECT FROM ext WHERE classid = '%s'::regclass AND objid = x.oid)
`, k.kind, k.name, k.owner, k.catalog, k.schema, k.catalog)
	}
	return b.String()
}

// objectsOwnedBy lists the objects role owns in the current database.
func objectsOwnedBy(ctx context.Context, q Querier, role string) ([]Object, error) {
	return queryObjects(ctx, q, objectsSQL+`
		WHERE o.owner_oid = (SELECT oid FROM pg_roles WHERE rolname = $1) ORDER BY 1, 2`, role)
}

// objectsNotOwnedBy lists the objects owner does not own. A schema owned by
// pg_database_owner (public, on PostgreSQL 15+) belongs to the database's
// owner and is not drift.
func objectsNotOwnedBy(ctx context.Context, q Querier, owner string) ([]Object, error) {
	return queryObjects(ctx, q, objectsSQL+`
		WHERE o.owner_oid NOT IN (SELECT oid FROM pg_roles WHERE rolname IN ($1, 'pg_database_owner'))
		ORDER BY 1, 2`, owner)
}

func queryObjects(ctx context.Context, q Querier, sql string, role string) ([]Object, error) {
	rows, err := q.Query(ctx, sql, role)
	if err != nil {
		return nil, fmt.Errorf("listing objects by owner: %w", err)
	}
	defer rows.Close()
	var out []Object
	for rows.Next() {
		var o Object
		if err := rows.Scan(&o.Kind, &o.Name, &o.Owner); err != nil {
			return nil, fmt.Errorf("listing objects by owner: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing objects by owner: %w", err)
	}
	return out, nil
}

// alterOwnerSQL is the statement giving o to owner. o.Name was quoted by
// the server; owner is quoted here. Every kind objectsSQL lists is named as
// ALTER names it ("materialized view", "text search configuration").
func alterOwnerSQL(o Object, owner string) string {
	return "ALTER " + strings.ToUpper(o.Kind) + " " + o.Name + " OWNER TO " + ident(owner)
}
