package configs

// Config is a parsed, defaulted and validated pgrotate configuration file.
type Config struct {
	// Path is the file the config was loaded from; it is not part of the YAML.
	Path string `yaml:"-"`
	// Listen is the client-facing address, host:port.
	Listen string `yaml:"listen"`
	// AdminListen is the address of the admin HTTP server (/metrics,
	// /healthz, /readyz, /status); "" means disabled, written "off" in YAML.
	AdminListen string `yaml:"admin_listen"`
	// UnixSocketDir, when set, is a directory where pgrotate also listens on
	// a Unix socket named as PostgreSQL's, .s.PGSQL.<listen port>, so that
	// `psql -h <dir> -p <port>` works for sidecars and local tools.
	UnixSocketDir string `yaml:"unix_socket_dir"`
	// Log selects the log format and level.
	Log Log `yaml:"log"`
	// Limits bounds client connections and timeouts of the whole process.
	Limits Limits `yaml:"limits"`
	// TLS configures TLS towards clients.
	TLS TLS `yaml:"tls"`
	// Auth configures client authentication.
	Auth Auth `yaml:"auth"`
	// Upstream is where the PostgreSQL server is and how to reach it.
	Upstream Upstream `yaml:"upstream"`
	// Databases maps the database name clients ask for to its settings.
	Databases map[string]*Database `yaml:"databases"`
	// Clients are the users allowed to log in to pgrotate.
	Clients []Client `yaml:"clients"`
	// Rotation configures the built-in role lifecycle (setup, rotate,
	// check and scheduled rotation inside serve).
	Rotation Rotation `yaml:"rotation"`

	meta *meta // where each key was written; set only while Parse runs
}

// Log selects how pgrotate logs.
type Log struct {
	// Format is "text" (the default) or "json".
	Format string `yaml:"format"`
	// Level is "debug", "info" (the default), "warn" or "error".
	Level string `yaml:"level"`
}

// Limits bounds the resources of the whole process.
type Limits struct {
	// MaxClientConn is the most client connections accepted at once.
	MaxClientConn int `yaml:"max_client_conn"`
	// AuthTimeout bounds startup and authentication of a client connection.
	AuthTimeout Duration `yaml:"auth_timeout"`
	// ShutdownTimeout bounds the drain on SIGTERM before connections are cut.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// AuthFailureDelay is waited before a failed login is answered, as
	// PostgreSQL's auth_delay does, to slow down password guessing.
	AuthFailureDelay Duration `yaml:"auth_failure_delay"`
	// EventLoop relays plaintext clients on an epoll event loop instead of
	// goroutines (Linux only): the same protocol handling for less CPU per
	// transaction. Off, every relay runs on goroutines, as TLS clients (and
	// transaction pools whose server connections use TLS) always do.
	EventLoop bool `yaml:"event_loop"`
	// BatchSends makes the event loop send what it wrote during one
	// wake-up with one system call (io_uring) instead of one per socket.
	// Where the kernel refuses io_uring (a seccomp profile, an old kernel,
	// kernel.io_uring_disabled) the loop writes one call at a time.
	BatchSends bool `yaml:"batch_sends"`
}

// TLS configures TLS towards clients.
type TLS struct {
	// CertFile is the PEM certificate chain; required unless Mode is "disable".
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key; required unless Mode is "disable".
	KeyFile string `yaml:"key_file"`
	// Mode is "disable" (the default), "prefer" or "require".
	Mode string `yaml:"mode"`
}

// Auth configures how clients authenticate to pgrotate.
type Auth struct {
	// AllowMD5 permits md5 password verifiers. Off by default: md5 is weak
	// and PostgreSQL itself deprecates it.
	AllowMD5 bool `yaml:"allow_md5"`
}

// Upstream says where PostgreSQL is and how pgrotate connects to it. The
// field names follow libpq's connection parameters.
type Upstream struct {
	// Host is a host name, an IP address or, when it starts with "/", a
	// unix socket directory — or several, comma-separated, as in libpq's
	// multi-host URLs: each new server connection tries them in order and
	// takes the first that matches TargetSessionAttrs, resolving names anew
	// each time, so a failover (RDS, Patroni) needs no restart.
	Host string `yaml:"host"`
	// TargetSessionAttrs is libpq's target_session_attrs; the default,
	// "read-write", skips a host that has become a standby.
	TargetSessionAttrs string `yaml:"target_session_attrs"`
	// Port is the server's port (also the socket file suffix).
	Port int `yaml:"port"`
	// SSLMode is one of libpq's sslmode values; the default is "prefer".
	SSLMode string `yaml:"sslmode"`
	// SSLRootCert is the CA bundle used by verify-ca and verify-full.
	SSLRootCert string `yaml:"sslrootcert"`
	// SSLCert is a client certificate, given together with SSLKey.
	SSLCert string `yaml:"sslcert"`
	// SSLKey is the client certificate's key, given together with SSLCert.
	SSLKey string `yaml:"sslkey"`
	// ConnectTimeout bounds one connection attempt, TLS and login included.
	ConnectTimeout Duration `yaml:"connect_timeout"`
}

// Database is one database clients can ask for, with its pool and the
// credential pgrotate uses to log in to it.
type Database struct {
	// Name is the map key: the name clients ask for. It is not in the YAML.
	Name string `yaml:"-"`
	// DBName is the upstream database name; the default is Name.
	DBName string `yaml:"dbname"`
	// OwnerRole is the NOLOGIN role every server session acts as (sent as
	// the startup option -c role=OwnerRole). Required.
	OwnerRole string `yaml:"owner_role"`
	// PoolMode is PoolSession (the default) or PoolTransaction.
	PoolMode PoolMode `yaml:"pool_mode"`
	// PoolSize is the most server connections, 1..10000; default 20.
	PoolSize int `yaml:"pool_size"`
	// MinPoolSize is the number of server connections kept open even when
	// idle; default 0, at most PoolSize.
	MinPoolSize int `yaml:"min_pool_size"`
	// QueryWaitTimeout bounds how long a client waits for a server connection.
	QueryWaitTimeout Duration `yaml:"query_wait_timeout"`
	// ServerIdleTimeout closes server connections idle for longer.
	ServerIdleTimeout Duration `yaml:"server_idle_timeout"`
	// ServerLifetime closes server connections older than this once released.
	ServerLifetime Duration `yaml:"server_lifetime"`
	// ServerCheckDelay is how long a server connection may sit idle before
	// upkeep checks that the server still answers, and how often it checks
	// one that stays idle (PgBouncer's server_check_delay).
	ServerCheckDelay Duration `yaml:"server_check_delay"`
	// Credentials is where the current executing role's credential is read.
	Credentials CredentialSource `yaml:"credentials"`
	// DrainTimeout bounds how long sessions of an old credential generation
	// may stay before they are ended with 57P01.
	DrainTimeout Duration `yaml:"drain_timeout"`
	// RoleGuard rejects statements that change role (SET ROLE, …); nil means
	// the default, true. Read it with RoleGuardEnabled.
	RoleGuard *bool `yaml:"role_guard"`
	// MaxPreparedStatements caps the named prepared statements transaction
	// pooling keeps on one server connection (PgBouncer's setting of that
	// name): past it, the least recently used are deallocated when the
	// connection is given back. 0: no cap. Default 200.
	MaxPreparedStatements int `yaml:"max_prepared_statements"`
}

// CredentialSource is where a database's login credential lives.
type CredentialSource struct {
	// Path is a directory of files (a Kubernetes Secret mount), a JSON file
	// or a file holding a libpq URL. Required.
	Path string `yaml:"path"`
	// Format is "auto" (the default: decided by what Path is), "dir",
	// "json" or "url".
	Format string `yaml:"format"`
	// PollInterval is how often Path is re-read in case a change event was
	// missed (Kubernetes symlink swaps, network file systems).
	PollInterval Duration `yaml:"poll_interval"`
}

// Client is a user allowed to log in to pgrotate.
type Client struct {
	// User is the user name in the client's startup message. Required, unique.
	User string `yaml:"user"`
	// PasswordVerifier is one stored secret: "SCRAM-SHA-256$…" or "md5…".
	PasswordVerifier string `yaml:"password_verifier"`
	// PasswordVerifiers are several secrets valid at once, for the overlap
	// while the application's own password is rotated.
	PasswordVerifiers []string `yaml:"password_verifiers"`
	// PasswordFile is a file holding one verifier per line.
	PasswordFile string `yaml:"password_file"`
	// Databases are the names (keys of Config.Databases) this client may
	// use; empty means all of them.
	Databases []string `yaml:"databases"`
}

// PoolMode says when a server connection is handed back to the pool.
type PoolMode string

const (
	// PoolSession keeps one server connection for the client's whole session.
	PoolSession PoolMode = "session"
	// PoolTransaction lends a server connection for one transaction.
	PoolTransaction PoolMode = "transaction"
)

// Rotation configures pgrotate's own role lifecycle: `pgrotate setup`,
// `pgrotate rotate`, `pgrotate check`, and scheduled rotation in serve.
type Rotation struct {
	// AdminURL is a libpq URL of a role allowed to create and drop the
	// executing roles (a superuser, or CREATEROLE with ADMIN on the owner
	// role on PostgreSQL 16+). It holds a password: never log it. Usually
	// written "${PGROTATE_ADMIN_URL}"; the -admin-url flag overrides it.
	AdminURL string `yaml:"admin_url"`
	// Interval is how often serve rotates each database; 0 (the default)
	// means never.
	Interval Duration `yaml:"interval"`
	// KeepPrevious is how many previous executing roles are kept (still
	// able to log in) instead of dropped; default 0.
	KeepPrevious int `yaml:"keep_previous"`
	// DrainWait bounds how long rotate waits for the sessions of an old
	// executing role to end before giving up; default 10m.
	DrainWait Duration `yaml:"drain_wait"`
	// RolePrefix names the executing roles <prefix>_<NNNN>; "" means the
	// owner role without its "_owner" suffix plus "_user".
	RolePrefix string `yaml:"role_prefix"`
	// ValidUntil, when positive, gives each new executing role a VALID
	// UNTIL that far in the future; 0 (the default) means no expiry.
	ValidUntil Duration `yaml:"valid_until"`
}
