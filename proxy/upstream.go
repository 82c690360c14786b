package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgrotate/pgrotate/configs"
	"github.com/pgrotate/pgrotate/rotation"
)

// Upstream logs in to PostgreSQL for one database. It is the only place that
// builds upstream connection settings, so the pool and the rotation validator
// connect exactly alike.
type Upstream struct {
	cfg   configs.Upstream
	db    *configs.Database
	owner string

	mu    sync.Mutex
	base  *pgconn.Config // copied per connection; re-parsed when the TLS files change
	files time.Time      // newest modification time of sslrootcert/sslcert/sslkey seen
}

// NewUpstream validates the upstream settings for db.
func NewUpstream(up configs.Upstream, db *configs.Database) (*Upstream, error) {
	base, err := pgconn.ParseConfig(connString(up, db.DBName))
	if err != nil {
		return nil, fmt.Errorf("parsing upstream settings: %w", err)
	}
	u := &Upstream{cfg: up, db: db, base: base, owner: db.OwnerRole}
	u.files = u.filesModTime()
	return u, nil
}

// current returns the parsed settings, parsing them anew when a TLS file
// (the upstream CA above all) changed since: a renewed CA or client
// certificate is used from the next connection on, without a restart. A file
// that does not parse keeps the settings that worked; the connection
// attempts then say why in the log.
func (u *Upstream) current() *pgconn.Config {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t := u.filesModTime(); t.After(u.files) {
		if base, err := pgconn.ParseConfig(connString(u.cfg, u.db.DBName)); err == nil {
			u.base, u.files = base, t
		}
	}
	return u.base
}

// filesModTime is the newest modification time of the upstream TLS files.
func (u *Upstream) filesModTime() time.Time {
	var newest time.Time
	for _, f := range []string{u.cfg.SSLRootCert, u.cfg.SSLCert, u.cfg.SSLKey} {
		if f == "" {
			continue
		}
		if st, err := os.Stat(f); err == nil && st.ModTime().After(newest) {
			newest = st.ModTime()
		}
	}
	return newest
}

// connString renders the non-secret settings as a libpq keyword/value string,
// so sslmode and its TLS consequences are handled by pgconn exactly as libpq
// users expect. The credential is filled in later, never rendered to a string.
func connString(up configs.Upstream, dbname string) string {
	hosts, ports := hostList(up.Host, up.Port)
	kv := [][2]string{
		{"host", hosts},
		{"port", ports},
		{"dbname", dbname},
		{"sslmode", up.SSLMode},
		{"target_session_attrs", up.TargetSessionAttrs},
		{"connect_timeout", strconv.Itoa(max(1, int(up.ConnectTimeout.Seconds())))},
		{"sslrootcert", up.SSLRootCert},
		{"sslcert", up.SSLCert},
		{"sslkey", up.SSLKey},
	}
	var b strings.Builder
	for _, p := range kv {
		if p[1] == "" {
			continue
		}
		fmt.Fprintf(&b, "%s='%s' ", p[0], connStringEscaper.Replace(p[1]))
	}
	return b.String()
}

// connStringEscaper escapes a value inside single quotes in a libpq
// connection string.
var connStringEscaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

// hostList turns upstream.host — one host, or several comma-separated, each
// optionally "host:port" — into libpq's parallel host and port lists.
func hostList(hosts string, port int) (string, string) {
	var hs, ps []string
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		p := strconv.Itoa(port)
		if host, hp, err := net.SplitHostPort(h); err == nil && !strings.HasPrefix(h, "/") {
			h, p = host, hp
		}
		hs, ps = append(hs, h), append(ps, p)
	}
	return strings.Join(hs, ","), strings.Join(ps, ",")
}

// Config returns the connection settings for logging in as cred, acting as the
// owner role through the startup option (DESIGN.md §2 fact 1): that makes the
// owner the session's reset value, so RESET ROLE and DISCARD ALL keep it.
func (u *Upstream) Config(cred rotation.Credential) *pgconn.Config {
	c := u.current().Copy()
	apply := func(host *string, port *uint16) {
		if cred.Host != "" {
			*host = cred.Host
		}
		if cred.Port != 0 {
			*port = uint16(cred.Port)
		}
	}
	apply(&c.Host, &c.Port)
	for _, fb := range c.Fallbacks {
		apply(&fb.Host, &fb.Port)
	}
	if cred.DBName != "" {
		c.Database = cred.DBName
	}
	c.User, c.Password = cred.Username, cred.Password
	c.RuntimeParams = map[string]string{"options": "-c role=" + escapeOption(u.owner)}
	return c
}

// escapeOption escapes a value for the startup "options" string, where spaces
// separate arguments and backslash escapes (PostgreSQL's pg_split_opts).
func escapeOption(s string) string {
	return optionEscaper.Replace(s)
}

var optionEscaper = strings.NewReplacer(`\`, `\\`, ` `, `\ `)

// Connect logs in as cred and returns the connection, still owned by pgconn.
func (u *Upstream) Connect(ctx context.Context, cred rotation.Credential) (*pgconn.PgConn, error) {
	conn, err := pgconn.ConnectConfig(ctx, u.Config(cred))
	if err != nil {
		return nil, &upstreamError{db: u.db.Name, role: cred.Username, err: err}
	}
	return conn, nil
}

// Validate logs in as cred and checks that the session acts as the owner role.
// It is the rotation.ValidateFunc of this database.
func (u *Upstream) Validate(ctx context.Context, cred rotation.Credential) error {
	conn, err := u.Connect(ctx, cred)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return rotation.CheckSession(ctx, conn, cred, u.owner)
}

// upstreamError is a failure to reach or log in to PostgreSQL. Its text is
// for pgrotate's log; clients get a generic 08006 (see wireerror.go).
type upstreamError struct {
	db, role string
	err      error
}

func (e *upstreamError) Error() string {
	return fmt.Sprintf("connecting to upstream for database %q as role %q: %v", e.db, e.role, e.err)
}

func (e *upstreamError) Unwrap() error { return e.err }
