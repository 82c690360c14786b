package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// AdminURL is a connection URL for the superuser "postgres" over the
// cluster's private unix socket, where pg_hba trusts it. It works with
// pgx.Connect, pgxpool and psql.
func (c *Cluster) AdminURL(dbname string) string {
	q := url.Values{}
	q.Set("host", c.SocketDir)
	q.Set("port", strconv.Itoa(c.Port))
	q.Set("sslmode", "disable")
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + dbname, RawQuery: q.Encode()}
	return u.String()
}

// TCPURL is a password-authenticated (scram-sha-256) URL over TCP to
// 127.0.0.1, with every part escaped:
// postgres://user:pw@127.0.0.1:port/db?sslmode=disable.
func (c *Cluster) TCPURL(user, password, dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// errStopped is returned by the SQL helpers after Stop.
var errStopped = errors.New("cluster is stopped")

// connect opens a superuser connection over the unix socket. The caller
// closes it.
func (c *Cluster) connect(ctx context.Context, dbname string) (*pgx.Conn, error) {
	c.mu.Lock()
	stopped := c.stopped
	c.mu.Unlock()
	if stopped {
		return nil, errStopped
	}
	return pgx.Connect(ctx, c.AdminURL(dbname))
}

// Exec runs one statement as the superuser in dbname.
func (c *Cluster) Exec(ctx context.Context, dbname, sql string, args ...any) error {
	conn, err := c.connect(ctx, dbname)
	if err != nil {
		return fmt.Errorf("connecting as superuser to %q: %w", dbname, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("executing as superuser in %q: %w", dbname, err)
	}
	return nil
}

// QueryStrings runs a query as the superuser in dbname and returns every
// row in PostgreSQL's text format, as psql would print it. NULL becomes "".
func (c *Cluster) QueryStrings(ctx context.Context, dbname, sql string, args ...any) ([][]string, error) {
	conn, err := c.connect(ctx, dbname)
	if err != nil {
		return nil, fmt.Errorf("connecting as superuser to %q: %w", dbname, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Asking for text results keeps the server's own rendering of every type.
	rows, err := conn.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("querying as superuser in %q: %w", dbname, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]string, len(raw))
		for i, v := range raw {
			row[i] = string(v)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("querying as superuser in %q: %w", dbname, err)
	}
	return out, nil
}
