package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// target is one place pgbench connects to: PostgreSQL itself or a pooler's
// database for one pool mode.
type target struct {
	name     string // "direct", "PgBouncer", "pgrotate"
	port     int    // on 127.0.0.1
	user     string
	password string
	db       string
	options  string  // PGOPTIONS; only the direct target needs "-c role=…"
	proc     *daemon // the proxy process whose CPU is measured; nil for direct
}

// env is the environment for a libpq client (pgbench) of the target. PG*
// variables of the caller are dropped so that none of them redirects or
// changes the run.
func (t target) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	env = append(env, "PGPASSWORD="+t.password, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
	if t.options != "" {
		env = append(env, "PGOPTIONS="+t.options)
	}
	return env
}

// connArgs are pgbench's connection flags for the target; the database name
// goes last on pgbench's command line.
func (t target) connArgs() []string {
	return []string{"-h", "127.0.0.1", "-p", strconv.Itoa(t.port), "-U", t.user}
}

// url is the target as a pgx connection URL.
func (t target) url() string {
	q := url.Values{"sslmode": {"disable"}}
	if t.options != "" {
		q.Set("options", t.options)
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(t.user, t.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(t.port)),
		Path:     "/" + t.db,
		RawQuery: q.Encode(),
	}
	return u.String()
}

// waitReady retries a login and a query for up to 15 s: a freshly started
// proxy may not listen yet, or may still be checking its credential.
func (t target) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var err error
	for {
		if err = t.query(ctx, "SELECT 1"); err == nil {
			return nil
		}
		if t.proc != nil {
			if exited := t.proc.running(); exited != nil {
				return fmt.Errorf("waiting for %s database %q: %w", t.name, t.db, exited)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s database %q: %w", t.name, t.db, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// query runs one statement on a fresh connection to the target.
func (t target) query(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, t.url())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. Another
// process may take it before ours listens; on a bench machine that is
// unlikely enough.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
