package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/pgrotate/pgrotate/internal/pgcluster"
)

// The layout of DESIGN.md §1: a NOLOGIN owner, a database it owns, and an
// executing role that logs in and acts as the owner.
const (
	dbName    = "bookstore"
	ownerRole = "bookstore_owner"
	execRole  = "bookstore_user_0001" // PgBouncer's and the direct target's
	appUser   = "bench_app"           // the user pgbench logs in to pgrotate as
)

// database is the throwaway cluster and what the poolers need to log in.
type database struct {
	cluster      *pgcluster.Cluster
	execPassword string // password of execRole
	execVerifier string // execRole's SCRAM verifier from pg_authid, for PgBouncer's auth_file
	version      string // server_version
	// roles are pgrotate's executing roles, apart from PgBouncer's so that
	// a drained old role shows as such; current is the one pgrotate's
	// credential names (the rotation under load alternates them).
	roles   [2]execCredential
	current execCredential
}

// execCredential is an executing role and its password.
type execCredential struct{ role, password string }

// other is the executing role the credential does not name.
func (db *database) other() execCredential {
	if db.current == db.roles[0] {
		return db.roles[1]
	}
	return db.roles[0]
}

// startDatabase starts a cluster big enough for every pool of the run to
// be full at once (idle server connections of one pooler linger while the
// next target runs) and creates the bookstore layout in it.
func startDatabase(ctx context.Context, s settings) (*database, error) {
	maxConn := 3*s.maxClients() + 2*s.txPoolSize + 20
	c, err := pgcluster.Start(ctx, pgcluster.Options{Settings: map[string]string{
		"max_connections": strconv.Itoa(maxConn),
		"shared_buffers":  "256MB",
	}})
	if err != nil {
		return nil, fmt.Errorf("starting PostgreSQL: %w", err)
	}
	db := &database{cluster: c}
	if err := db.createRoles(ctx); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return db, nil
}

// createRoles makes the owner, the database and the executing role, and
// reads back what the poolers need.
func (db *database) createRoles(ctx context.Context) error {
	c := db.cluster
	b := pgcluster.Bookstore{DB: dbName, Owner: ownerRole}
	if err := c.CreateBookstore(ctx, b); err != nil {
		return err
	}
	db.execPassword = randomSecret()
	// CreateExecutingRole also sets "ALTER ROLE … SET role = owner": that is
	// what makes PgBouncer's server sessions act as the owner, since
	// PgBouncer 1.18 can send no startup options upstream.
	if err := c.CreateExecutingRole(ctx, b, execRole, db.execPassword); err != nil {
		return err
	}
	db.roles = [2]execCredential{{"bookstore_user_0002", randomSecret()}, {"bookstore_user_0003", randomSecret()}}
	db.current = db.roles[0]
	for _, r := range db.roles {
		if err := c.CreateExecutingRole(ctx, b, r.role, r.password); err != nil {
			return err
		}
	}
	rows, err := c.QueryStrings(ctx, "postgres",
		"SELECT rolpassword, current_setting('server_version') FROM pg_authid WHERE rolname = $1", execRole)
	if err != nil {
		return fmt.Errorf("reading the verifier of %s: %w", execRole, err)
	}
	if len(rows) != 1 {
		return fmt.Errorf("reading the verifier of %s: got %d rows", execRole, len(rows))
	}
	db.execVerifier, db.version = rows[0][0], rows[0][1]
	return nil
}

// stop stops the cluster and removes its directory.
func (db *database) stop() error {
	if err := db.cluster.Stop(); err != nil {
		return fmt.Errorf("stopping PostgreSQL: %w", err)
	}
	return nil
}

// randomSecret is a fresh password made of hex digits, so it needs no
// quoting in a PgBouncer connection string.
func randomSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
