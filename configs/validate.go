package configs

import (
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Allowed values of the enumerated settings.
var (
	logFormats         = []string{"text", "json"}
	logLevels          = []string{"debug", "info", "warn", "error"}
	tlsModes           = []string{"disable", "prefer", "require"}
	sslModes           = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
	poolModes          = []string{string(PoolSession), string(PoolTransaction)}
	credentialFormats  = []string{"auto", "dir", "json", "url"}
	targetSessionAttrs = []string{"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}
)

// maxPoolSize bounds pool_size: far above what one PostgreSQL server
// accepts by default (max_connections=100), low enough to catch a typo.
const maxPoolSize = 10000

// maxPrepared bounds max_prepared_statements, like maxPoolSize a guard
// against a typo: each statement costs the server connection memory.
const maxPrepared = 100000

// validate records every problem of a decoded, defaulted config in c.meta.
func (c *Config) validate() {
	m := c.meta
	c.checkAddress("listen", c.Listen, `such as "127.0.0.1:6432" or ":6432"`)
	if d := c.UnixSocketDir; d != "" && !strings.HasPrefix(d, "/") {
		m.invalid("unix_socket_dir", "must be an absolute directory path, got %q", d)
	}
	if c.AdminListen != "" {
		c.checkAddress("admin_listen", c.AdminListen, `such as "127.0.0.1:9187", or "off" to disable the admin server`)
	}
	c.oneOf("log.format", c.Log.Format, logFormats)
	c.oneOf("log.level", c.Log.Level, logLevels)
	if c.Limits.MaxClientConn < 1 {
		m.invalid("limits.max_client_conn", "must be at least 1, got %d", c.Limits.MaxClientConn)
	}
	c.positive("limits.auth_timeout", c.Limits.AuthTimeout)
	c.positive("limits.shutdown_timeout", c.Limits.ShutdownTimeout)
	c.positive("limits.auth_failure_delay", c.Limits.AuthFailureDelay)
	c.validateTLS()
	c.validateUpstream()
	c.validateDatabases()
	c.validateClients()
	c.validateRotation()
}

// validateRotation checks the role lifecycle settings. The admin URL is
// never shown: it holds a password.
func (c *Config) validateRotation() {
	r := c.Rotation
	if r.Interval.Duration < 0 {
		c.meta.invalid("rotation.interval", "must be 0 (off) or a positive duration such as \"24h\"")
	}
	if r.Interval.Duration > 0 && r.AdminURL == "" {
		c.meta.invalid("rotation.admin_url", "required when rotation.interval is set: a connection URL of a role that may create and drop the executing roles")
	}
	if r.AdminURL != "" && !strings.HasPrefix(r.AdminURL, "postgres://") && !strings.HasPrefix(r.AdminURL, "postgresql://") {
		c.meta.invalid("rotation.admin_url", "must be a postgres:// or postgresql:// URL (value not shown)")
	}
	if r.KeepPrevious < 0 {
		c.meta.invalid("rotation.keep_previous", "must be 0 or more, got %d", r.KeepPrevious)
	}
	c.positive("rotation.drain_wait", r.DrainWait)
	if r.ValidUntil.Duration < 0 {
		c.meta.invalid("rotation.valid_until", "must be 0 (no expiry) or a positive duration")
	}
	if r.ValidUntil.Duration > 0 && r.Interval.Duration > 0 && r.ValidUntil.Duration <= r.Interval.Duration {
		c.meta.invalid("rotation.valid_until", "must be longer than rotation.interval, or the current role expires before the next rotation")
	}
}

// validateTLS checks the client-side TLS settings.
func (c *Config) validateTLS() {
	if !c.oneOf("tls.mode", c.TLS.Mode, tlsModes) || c.TLS.Mode == "disable" {
		return
	}
	c.required("tls.cert_file", c.TLS.CertFile, "a PEM certificate file is needed when tls.mode is "+c.TLS.Mode)
	c.required("tls.key_file", c.TLS.KeyFile, "a PEM key file is needed when tls.mode is "+c.TLS.Mode)
}

// validateUpstream checks how PostgreSQL is reached.
func (c *Config) validateUpstream() {
	u := c.Upstream
	c.required("upstream.host", u.Host, "a host name, an IP address or a unix socket directory")
	if u.Port < 1 || u.Port > 65535 {
		c.meta.invalid("upstream.port", "must be from 1 to 65535, got %d", u.Port)
	}
	c.oneOf("upstream.sslmode", u.SSLMode, sslModes)
	c.oneOf("upstream.target_session_attrs", u.TargetSessionAttrs, targetSessionAttrs)
	if (u.SSLCert == "") != (u.SSLKey == "") {
		c.meta.invalid("upstream", "sslcert and sslkey must be given together")
	}
	c.positive("upstream.connect_timeout", u.ConnectTimeout)
}

// validateDatabases checks each database, in name order.
func (c *Config) validateDatabases() {
	if len(c.Databases) == 0 {
		c.meta.invalid("databases", "at least one database is required")
		return
	}
	names := make([]string, 0, len(c.Databases))
	for name := range c.Databases {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c.validateDatabase(childPath("databases", name), c.Databases[name])
	}
}

// validateDatabase checks one database; p is its key path.
func (c *Config) validateDatabase(p string, d *Database) {
	m := c.meta
	if d.Name == "" {
		m.invalid(p, "a database name must not be empty")
	}
	c.required(p+".dbname", d.DBName, "the upstream database name (leave the key out to use the database's name)")
	c.required(p+".owner_role", d.OwnerRole, "the NOLOGIN role that owns the database's objects; every server session acts as it")
	c.oneOf(p+".pool_mode", string(d.PoolMode), poolModes)
	if d.PoolSize < 1 || d.PoolSize > maxPoolSize {
		m.invalid(p+".pool_size", "must be from 1 to %d, got %d", maxPoolSize, d.PoolSize)
	} else if d.MinPoolSize < 0 || d.MinPoolSize > d.PoolSize {
		m.invalid(p+".min_pool_size", "must be from 0 to pool_size (%d), got %d", d.PoolSize, d.MinPoolSize)
	}
	if d.MaxPreparedStatements < 0 || d.MaxPreparedStatements > maxPrepared {
		m.invalid(p+".max_prepared_statements", "must be from 0 (no cap) to %d, got %d", maxPrepared, d.MaxPreparedStatements)
	}
	c.positive(p+".query_wait_timeout", d.QueryWaitTimeout)
	c.positive(p+".server_idle_timeout", d.ServerIdleTimeout)
	c.positive(p+".server_lifetime", d.ServerLifetime)
	c.positive(p+".server_check_delay", d.ServerCheckDelay)
	c.positive(p+".drain_timeout", d.DrainTimeout)
	c.required(p+".credentials.path", d.Credentials.Path, "a directory (Kubernetes Secret mount), a JSON file or a file holding a libpq URL")
	c.oneOf(p+".credentials.format", d.Credentials.Format, credentialFormats)
	c.positive(p+".credentials.poll_interval", d.Credentials.PollInterval)
}

// validateClients checks each client in file order.
func (c *Config) validateClients() {
	if len(c.Clients) == 0 {
		c.meta.invalid("clients", "at least one client is required")
		return
	}
	firstByUser := map[string]int{}
	for i := range c.Clients {
		p := itemPath("clients", i)
		cl := &c.Clients[i]
		if c.required(p+".user", cl.User, "the user name applications log in with") {
			if j, dup := firstByUser[cl.User]; dup {
				c.meta.invalid(p+".user", "duplicate user %s, already defined at %s (line %d)",
					c.meta.show(p+".user", cl.User), itemPath("clients", j), c.meta.lineOf(itemPath("clients", j)))
			} else {
				firstByUser[cl.User] = i
			}
		}
		c.validateSecrets(p, cl)
		c.validateReferences(p, cl)
	}
}

// validateSecrets checks that a client has a secret and that each inline
// verifier at least looks like one. Parsing them belongs to the auth
// package; here a typo such as a password pasted instead of its verifier
// is caught at load. A message never shows the verifier.
func (c *Config) validateSecrets(p string, cl *Client) {
	if cl.PasswordVerifier == "" && len(cl.PasswordVerifiers) == 0 && cl.PasswordFile == "" {
		c.meta.invalid(p, "needs password_verifier, password_verifiers or password_file")
	}
	if cl.PasswordVerifier != "" {
		c.checkVerifier(p+".password_verifier", cl.PasswordVerifier)
	}
	for i, v := range cl.PasswordVerifiers {
		c.checkVerifier(itemPath(p+".password_verifiers", i), v)
	}
}

// checkVerifier checks the prefix of one verifier at key path p.
func (c *Config) checkVerifier(p, v string) {
	switch {
	case strings.HasPrefix(v, "SCRAM-SHA-256$"):
	case strings.HasPrefix(v, "md5"):
		if !c.Auth.AllowMD5 {
			c.meta.invalid(p, "md5 verifiers are refused unless auth.allow_md5 is true; prefer a SCRAM-SHA-256 verifier (pgrotate passwd makes one)")
		}
	default:
		c.meta.invalid(p, `must be a verifier, not a password: "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" (pgrotate passwd makes one) or "md5" followed by 32 hex digits`)
	}
}

// validateReferences checks that a client names only defined databases.
func (c *Config) validateReferences(p string, cl *Client) {
	for i, name := range cl.Databases {
		if _, ok := c.Databases[name]; !ok {
			c.meta.invalid(itemPath(p+".databases", i), "unknown database %s; defined: %s",
				c.meta.show(itemPath(p+".databases", i), name), c.databaseNames())
		}
	}
}

// databaseNames lists the defined databases for error messages.
func (c *Config) databaseNames() string {
	names := make([]string, 0, len(c.Databases))
	for n := range c.Databases {
		names = append(names, n)
	}
	if len(names) == 0 {
		return "none"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// checkAddress checks a host:port listen address; example says what is
// allowed. Port 0 is accepted: it asks the kernel for a free port (tests).
func (c *Config) checkAddress(p, addr, example string) {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		var n int
		n, err = strconv.Atoi(port)
		if err == nil && (n < 0 || n > 65535) {
			err = strconv.ErrRange
		}
	}
	if err != nil {
		c.meta.invalid(p, "must be host:port, %s; got %s", example, c.meta.show(p, addr))
	}
}

// required records a problem when v is empty; what says what belongs there.
// It reports whether v was present.
func (c *Config) required(p, v, what string) bool {
	if v == "" {
		c.meta.invalid(p, "required: %s", what)
		return false
	}
	return true
}

// oneOf records a problem when v is not in allowed; it reports whether it was.
func (c *Config) oneOf(p, v string, allowed []string) bool {
	if slices.Contains(allowed, v) {
		return true
	}
	c.meta.invalid(p, "must be one of %s; got %s", strings.Join(allowed, ", "), c.meta.show(p, v))
	return false
}

// positive records a problem when d is not above zero.
func (c *Config) positive(p string, d Duration) {
	if d.Duration <= 0 {
		c.meta.invalid(p, "must be a positive duration such as \"30s\" or \"5m\", got %s", c.meta.show(p, d.String()))
	}
}
