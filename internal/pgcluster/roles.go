package pgcluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgrotate/pgrotate/auth"
)

// Bookstore describes the owner/executing-role layout of DESIGN.md §1.
type Bookstore struct {
	DB    string // database name, e.g. "bookstore"
	Owner string // NOLOGIN owner role, e.g. "bookstore_owner"
}

func (b Bookstore) validate() error {
	if b.DB == "" || b.Owner == "" {
		return errors.New("bookstore needs both DB and Owner")
	}
	return nil
}

// CreateBookstore creates the owner role (NOLOGIN) and the database owned by
// it, and revokes CREATE/CONNECT from PUBLIC appropriately so only members of
// the owner can work there (CONNECT granted to the owner). Idempotent.
//
// PostgreSQL checks CONNECT for the login role before the startup option
// "-c role=…" applies, and a NOINHERIT member does not use the owner's
// grants there, so CreateExecutingRole grants CONNECT to each executing role
// too. Anyone creating executing roles another way must do the same.
func (c *Cluster) CreateBookstore(ctx context.Context, b Bookstore) error {
	if err := b.validate(); err != nil {
		return fmt.Errorf("creating bookstore: %w", err)
	}
	c.ddlMu.Lock()
	defer c.ddlMu.Unlock()
	if err := c.createDatabase(ctx, b); err != nil {
		return fmt.Errorf("creating bookstore database %q: %w", b.DB, err)
	}
	if err := c.lockDownSchema(ctx, b); err != nil {
		return fmt.Errorf("locking down schema public of %q: %w", b.DB, err)
	}
	return nil
}

// createDatabase makes the owner role and the database, and leaves CONNECT
// to the owner alone.
func (c *Cluster) createDatabase(ctx context.Context, b Bookstore) error {
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	owner, db := ident(b.Owner), ident(b.DB)
	if err := ensureRole(ctx, conn, b.Owner, "NOLOGIN"); err != nil {
		return err
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", b.DB).Scan(&exists); err != nil {
		return err
	}
	if !exists { // CREATE DATABASE has no IF NOT EXISTS and cannot run in a DO block
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+db+" OWNER "+owner); err != nil {
			return err
		}
	}
	return execAll(ctx, conn,
		"REVOKE ALL ON DATABASE "+db+" FROM PUBLIC",
		"GRANT CONNECT, TEMPORARY ON DATABASE "+db+" TO "+owner)
}

// lockDownSchema keeps non-owners from creating objects in schema public.
// PostgreSQL 15 already revokes CREATE from PUBLIC and makes the database
// owner the schema's owner (via pg_database_owner); older versions need it
// done by hand.
func (c *Cluster) lockDownSchema(ctx context.Context, b Bookstore) error {
	conn, err := c.connect(ctx, b.DB)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	stmts := []string{"REVOKE CREATE ON SCHEMA public FROM PUBLIC"}
	if c.Version < 15 {
		stmts = append(stmts, "ALTER SCHEMA public OWNER TO "+ident(b.Owner))
	}
	return execAll(ctx, conn, stmts...)
}

// CreateExecutingRole creates a LOGIN role with password, NOINHERIT, granted
// the owner (on PG16+ with INHERIT FALSE, SET TRUE), and ALTER ROLE … SET
// role = owner. Idempotent (re-setting the password if it exists). It also
// grants CONNECT on the database to the role (see CreateBookstore).
func (c *Cluster) CreateExecutingRole(ctx context.Context, b Bookstore, role, password string) error {
	if err := b.validate(); err != nil {
		return fmt.Errorf("creating executing role %q: %w", role, err)
	}
	grant := "GRANT " + ident(b.Owner) + " TO " + ident(role)
	if c.Version >= 16 {
		// PG16 splits membership into INHERIT/SET/ADMIN; SET is all we need.
		grant += " WITH INHERIT FALSE, SET TRUE"
	}
	err := c.withRole(ctx, role, "LOGIN NOINHERIT", password,
		grant,
		"ALTER ROLE "+ident(role)+" SET role = "+ident(b.Owner),
		"GRANT CONNECT ON DATABASE "+ident(b.DB)+" TO "+ident(role))
	if err != nil {
		return fmt.Errorf("creating executing role %q: %w", role, err)
	}
	return nil
}

// CreateLoginRole creates a LOGIN role with a password that is NOT a member
// of the owner (for negative tests). It has no CONNECT on a bookstore
// database; it can log in to the "postgres" database.
func (c *Cluster) CreateLoginRole(ctx context.Context, role, password string) error {
	if err := c.withRole(ctx, role, "LOGIN", password); err != nil {
		return fmt.Errorf("creating login role %q: %w", role, err)
	}
	return nil
}

// withRole creates or alters role with attrs and password in one
// transaction, then runs the extra statements in it.
func (c *Cluster) withRole(ctx context.Context, role, attrs, password string, extra ...string) error {
	if role == "" {
		return errors.New("empty role name")
	}
	// Only the verifier reaches the server, never the password: it stays out
	// of the server's statement log.
	verifier, err := auth.NewSCRAMVerifier(password, auth.DefaultSCRAMIterations)
	if err != nil {
		return fmt.Errorf("making the SCRAM verifier: %w", err)
	}
	c.ddlMu.Lock()
	defer c.ddlMu.Unlock()
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var lit string // quoted by the server, never by string concatenation
		if err := tx.QueryRow(ctx, "SELECT quote_literal($1::text)", verifier).Scan(&lit); err != nil {
			return err
		}
		if err := ensureRole(ctx, tx, role, attrs+" PASSWORD "+lit); err != nil {
			return err
		}
		return execAll(ctx, tx, extra...)
	})
}

// execer is what pgx.Conn and pgx.Tx share.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ensureRole creates role with attrs, or alters it to have them.
func ensureRole(ctx context.Context, q execer, role, attrs string) error {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return err
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	_, err := q.Exec(ctx, verb+" ROLE "+ident(role)+" "+attrs)
	return err
}

func execAll(ctx context.Context, q execer, stmts ...string) error {
	for _, s := range stmts {
		if _, err := q.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// ident quotes a role or database name as an SQL identifier.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
