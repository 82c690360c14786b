package proxy

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// sessionStateSQL reads, in one round trip, the state of an idle server
// session that decides whether its client can move to another connection:
// what cannot be carried over (tag "block"), the settings the session changed
// ("set") and the protocol-level prepared statements ("prepare") — pgx, JDBC
// and psycopg 3 cache those, so carrying them is what makes moves routine.
var sessionStateSQL = `SELECT 'block', concat_ws(', ',
  CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_listening_channels()) THEN 'LISTEN' END,
  CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema()) THEN 'temporary tables' END,
  CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_cursors WHERE is_holdable) THEN 'WITH HOLD cursors' END,
  CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()) THEN 'advisory locks' END,
  CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_prepared_statements WHERE from_sql) THEN 'SQL PREPARE statements' END), NULL
UNION ALL
SELECT 'set', name, ` + serverEncodedHex("pg_catalog.current_setting(name)") + ` FROM pg_catalog.pg_settings
  WHERE source = 'session' AND name NOT IN ('role', 'session_authorization')
UNION ALL
SELECT 'prepare', name, statement || E'\x01' || parameter_types::oid[]::text FROM pg_catalog.pg_prepared_statements
  WHERE NOT from_sql`

// serverEncodedHex is SQL for the value of expr in the server's encoding,
// as hex: the session's client_encoding (LATIN1, say) would otherwise
// convert it, and settingsQueries sends other than ASCII in the server's
// encoding.
func serverEncodedHex(expr string) string {
	return "pg_catalog.encode(pg_catalog.convert_to(" + expr + ", pg_catalog.current_setting('server_encoding')), 'hex')"
}

// carriedState is what a client's session holds that pgrotate re-creates on
// the connection it moves to.
type carriedState struct {
	settings map[string]string
	prepared []*pgproto3.Parse
	// unnamed is the body of the Parse of the client's unnamed statement,
	// which pg_prepared_statements does not show: the session relay keeps it.
	unnamed []byte
}

// errUnmovable means the session holds state pgrotate cannot carry over.
var errUnmovable = errors.New("session state cannot be carried to a new connection")

// readCarriedState reads sc's session state, the custom settings named in
// custom included. It fails with errUnmovable when
// something in it cannot be re-created elsewhere.
func readCarriedState(ctx context.Context, sc *serverConn, custom customSettings) (*carriedState, error) {
	rows, err := sc.query(ctx, sessionStateSQL+custom.stateSQL())
	if err != nil {
		return nil, fmt.Errorf("reading session state: %w", err)
	}
	cs := &carriedState{settings: make(map[string]string)}
	for _, r := range rows {
		switch r[0] {
		case "block":
			if r[1] != "" {
				return nil, fmt.Errorf("%w: %s", errUnmovable, r[1])
			}
		case "set":
			v, err := hex.DecodeString(r[2])
			if err != nil {
				return nil, fmt.Errorf("reading setting %s: %w", r[1], err)
			}
			cs.settings[r[1]] = string(v)
		case "prepare":
			p, err := parsePrepared(r[1], r[2])
			if err != nil {
				return nil, err
			}
			cs.prepared = append(cs.prepared, p)
		}
	}
	return cs, nil
}

// parsePrepared rebuilds the Parse message of a prepared statement from
// pg_prepared_statements: its text, and its parameter types as "{23,25}".
func parsePrepared(name, textAndTypes string) (*pgproto3.Parse, error) {
	i := strings.LastIndexByte(textAndTypes, '\x01')
	if i < 0 {
		return nil, fmt.Errorf("reading prepared statement %q: malformed row", name)
	}
	p := &pgproto3.Parse{Name: name, Query: textAndTypes[:i]}
	types := strings.Trim(textAndTypes[i+1:], "{}")
	if types == "" {
		return p, nil
	}
	for _, t := range strings.Split(types, ",") {
		oid, err := strconv.ParseUint(t, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("reading prepared statement %q: parameter type %q: %w", name, t, err)
		}
		p.ParameterOIDs = append(p.ParameterOIDs, uint32(oid))
	}
	return p, nil
}

// restore re-creates cs on sc, which must be idle.
func (cs *carriedState) restore(ctx context.Context, sc *serverConn) error {
	if sql := setConfigSQL(cs.settings); sql != "" {
		if err := sc.roundTrip(ctx, settingsQueries("", sql), nil); err != nil {
			return fmt.Errorf("restoring settings: %w", err)
		}
	}
	if err := restorePrepared(ctx, sc, cs.prepared); err != nil {
		return fmt.Errorf("restoring %d prepared statements: %w", len(cs.prepared), err)
	}
	// Last, so that it is parsed with the session's settings (search_path).
	if err := parseUnnamed(ctx, sc, cs.unnamed); err != nil {
		return fmt.Errorf("restoring the unnamed statement: %w", err)
	}
	return nil
}

// restorePrepared prepares a session's named statements again on sc, in one
// round trip. A statement PostgreSQL no longer accepts (its table was
// dropped since) must not keep the client from moving: on the old
// connection it fails when run, and so it must on the new one. So if one
// fails, they are prepared again one at a time, and each that fails is
// given a stand-in that raises its error (prepareOrStandIn).
func restorePrepared(ctx context.Context, sc *serverConn, prepared []*pgproto3.Parse) error {
	if len(prepared) == 0 {
		return nil
	}
	msgs := make([]pgproto3.FrontendMessage, 0, len(prepared)+1)
	for _, p := range prepared {
		msgs = append(msgs, p)
	}
	err := sc.roundTrip(ctx, append(msgs, &pgproto3.Sync{}), nil)
	if !isServerError(err) {
		return err
	}
	if err := sc.exec(ctx, "DEALLOCATE ALL"); err != nil {
		return err
	}
	for _, p := range prepared {
		if err := prepareOrStandIn(ctx, sc, p); err != nil {
			return err
		}
	}
	return nil
}

// keptUnnamed returns body, the client's last Parse of the unnamed
// statement, if sc holds an unnamed statement, and nil if it holds none:
// the Parse failed, and a Bind of it must fail with 26000 on the new
// connection too, not with the Parse's error. It must be asked before
// pgrotate runs anything on sc: a simple Query drops the statement.
func keptUnnamed(ctx context.Context, sc *serverConn, body []byte) ([]byte, error) {
	if len(body) == 0 {
		return nil, nil
	}
	err := sc.roundTrip(ctx, []pgproto3.FrontendMessage{&pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{}}, nil)
	var se *serverError
	switch {
	case err == nil:
		return body, nil
	case errors.As(err, &se) && se.Code == codeInvalidStatementName:
		return nil, nil
	case errors.As(err, &se):
		// It exists and fails (its table was dropped since): it moves as
		// a stand-in that fails alike (prepareOrStandIn).
		return body, nil
	default:
		return nil, fmt.Errorf("describing the unnamed statement: %w", err)
	}
}

// parseUnnamed parses the unnamed statement of a Parse body on sc, which
// must be idle; nothing if body is empty or malformed (PostgreSQL refused it
// when the client sent it).
func parseUnnamed(ctx context.Context, sc *serverConn, body []byte) error {
	var p pgproto3.Parse
	if len(body) == 0 || p.Decode(body) != nil {
		return nil
	}
	return prepareOrStandIn(ctx, sc, &p)
}

// prepareOrStandIn parses p on sc, which must be idle. If PostgreSQL refuses
// it, a stand-in takes its name and parameters, and raises the same error
// when run.
func prepareOrStandIn(ctx context.Context, sc *serverConn, p *pgproto3.Parse) error {
	err := sc.roundTrip(ctx, []pgproto3.FrontendMessage{p, &pgproto3.Sync{}}, nil)
	var se *serverError
	if !errors.As(err, &se) {
		return err
	}
	stand := standIn(p, raiseSQL(se.Code, se.Message))
	return sc.roundTrip(ctx, []pgproto3.FrontendMessage{stand, &pgproto3.Sync{}}, nil)
}
