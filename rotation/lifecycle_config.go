package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgrotate/pgrotate/configs"
)

// OpenAdmin opens a pool on database dbname with the admin URL (its own
// database name is replaced). The URL holds a password: no error quotes it.
// The pool connects lazily; the caller closes it.
func OpenAdmin(ctx context.Context, adminURL, dbname string) (*pgxpool.Pool, error) {
	if adminURL == "" {
		return nil, errors.New("opening the admin connection: no admin URL (rotation.admin_url, -admin-url or PGROTATE_ADMIN_URL)")
	}
	cfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, errors.New("opening the admin connection: the admin URL is not a valid connection URL (value not shown)")
	}
	cfg.ConnConfig.Database = dbname
	cfg.MaxConns = 4 // the lock, the rotation, and room for a retry
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening the admin connection to %s: %w", dbname, err)
	}
	return pool, nil
}

// NewLifecycle builds the Lifecycle of database db from the config, on an
// admin pool opened with OpenAdmin(…, db.DBName).
func NewLifecycle(cfg *configs.Config, db *configs.Database, admin *pgxpool.Pool) *Lifecycle {
	r := cfg.Rotation
	return &Lifecycle{
		Admin:        admin,
		DBName:       db.DBName,
		Owner:        db.OwnerRole,
		Prefix:       r.RolePrefix,
		Credentials:  db.Credentials.Path,
		Format:       Format(db.Credentials.Format),
		Upstream:     upstreamForURL(cfg.Upstream.Host, cfg.Upstream.Port, db.DBName),
		KeepPrevious: r.KeepPrevious,
		Settle:       2 * db.Credentials.PollInterval.Duration,
		DrainWait:    r.DrainWait.Duration,
		ValidUntil:   r.ValidUntil.Duration,
	}
}

// upstreamForURL is the host, port and database a URL credential written
// by setup or rotate names: the configured upstream's when it is one host
// (a name or an address, "host:port" split), none when it lists several or
// is a Unix socket directory, which a URL cannot say as pgrotate reads it.
// A URL without them means the configured upstream.
func upstreamForURL(host string, port int, dbname string) Credential {
	c := Credential{DBName: dbname}
	switch {
	case host == "" || strings.ContainsAny(host, ",/"):
	case net.ParseIP(host) != nil || !strings.Contains(host, ":"):
		c.Host, c.Port = host, port
	default:
		h, p, err := net.SplitHostPort(host)
		if n, perr := strconv.Atoi(p); err == nil && perr == nil {
			c.Host, c.Port = h, n
		}
	}
	return c
}

// NewScheduler builds the scheduled rotation of db for serve, or returns nil
// when the config asks for none (no admin URL or no interval). It opens no
// connection: Run opens the admin pool and closes it on return. Each step
// of a rotation is logged to log.
func NewScheduler(cfg *configs.Config, db *configs.Database, log *slog.Logger) *Scheduler {
	if cfg.Rotation.AdminURL == "" || cfg.Rotation.Interval.Duration <= 0 {
		return nil
	}
	l := NewLifecycle(cfg, db, nil)
	l.Report = func(line string) { log.Info("rotation: " + line) }
	return &Scheduler{Lifecycle: l, Interval: cfg.Rotation.Interval.Duration, Logger: log, AdminURL: cfg.Rotation.AdminURL}
}
