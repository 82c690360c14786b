package rotation

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgrotate/pgrotate/auth"
)

// ident quotes a role or database name as an SQL identifier. Role DDL takes
// no bound parameters, so every name in it goes through here.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// literal has the server quote s as an SQL literal, for the DDL that needs
// one (PASSWORD, VALID UNTIL, COMMENT): the server knows its own
// standard_conforming_strings, and s travels as a bound parameter.
func literal(ctx context.Context, q Querier, s string) (string, error) {
	var lit string
	if err := q.QueryRow(ctx, "SELECT format('%L', $1::text)", s).Scan(&lit); err != nil {
		return "", fmt.Errorf("quoting a literal: %w", err)
	}
	return lit, nil
}

// newPassword returns 32 URL-safe random characters (192 bits).
func newPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// serverVersionNum is the server's server_version_num (160002, …).
func serverVersionNum(ctx context.Context, q Querier) (int, error) {
	var v int
	if err := q.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v); err != nil {
		return 0, fmt.Errorf("reading server_version_num: %w", err)
	}
	return v, nil
}

// ensureExecRole makes role a complete executing role with password, in one
// transaction: LOGIN NOINHERIT with the password's SCRAM verifier (the
// password itself never reaches the server), member of the owner, acting as
// the owner on direct logins, allowed to CONNECT. exists says whether to
// CREATE or ALTER it.
func (l *Lifecycle) ensureExecRole(ctx context.Context, role, password string, exists bool) error {
	verifier, err := auth.NewSCRAMVerifier(password, auth.DefaultSCRAMIterations)
	if err != nil {
		return err
	}
	version, err := serverVersionNum(ctx, l.Admin)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, l.Admin, func(tx pgx.Tx) error {
		attrs, err := l.roleAttributes(ctx, tx, verifier)
		if err != nil {
			return err
		}
		verb := "CREATE"
		if exists {
			verb = "ALTER"
		}
		grant := "GRANT " + ident(l.Owner) + " TO " + ident(role)
		if version >= 160000 {
			// PostgreSQL 16 splits membership into INHERIT, SET and ADMIN;
			// SET is all the startup role option needs (DESIGN.md §2 fact 8).
			grant += " WITH INHERIT FALSE, SET TRUE"
		}
		comment, err := literal(ctx, tx, createdComment(l.Owner, l.now()))
		if err != nil {
			return err
		}
		for _, stmt := range []string{
			verb + " ROLE " + ident(role) + " " + attrs,
			grant,
			// A direct login (psql, a hand-run migration) acts as the owner too.
			"ALTER ROLE " + ident(role) + " SET role = " + ident(l.Owner),
			// CONNECT is checked against the login role, before the role option applies.
			"GRANT CONNECT ON DATABASE " + ident(l.DBName) + " TO " + ident(role),
			"COMMENT ON ROLE " + ident(role) + " IS " + comment,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("creating executing role %s: %w", role, err)
			}
		}
		return nil
	})
}

// roleAttributes renders LOGIN NOINHERIT PASSWORD '<verifier>' [VALID UNTIL].
func (l *Lifecycle) roleAttributes(ctx context.Context, q Querier, verifier string) (string, error) {
	pw, err := literal(ctx, q, verifier)
	if err != nil {
		return "", err
	}
	attrs := "LOGIN NOINHERIT PASSWORD " + pw
	until := "infinity"
	if l.ValidUntil > 0 {
		until = l.now().Add(l.ValidUntil).UTC().Format(time.RFC3339)
	}
	lit, err := literal(ctx, q, until)
	if err != nil {
		return "", err
	}
	return attrs + " VALID UNTIL " + lit, nil
}
