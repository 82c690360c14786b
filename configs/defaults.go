package configs

import "time"

// Defaults, as documented on the Config fields. They are set before the
// file is decoded, so a key left out keeps its default and a key written
// with a bad value is reported instead of silently defaulted.
const (
	defaultListen             = "127.0.0.1:6432"
	defaultAdminListen        = "127.0.0.1:9187"
	defaultMaxClientConn      = 1000
	defaultAuthTimeout        = 10 * time.Second
	defaultShutdownTimeout    = 30 * time.Second
	defaultAuthFailureDelay   = 200 * time.Millisecond
	defaultUpstreamHost       = "127.0.0.1"
	defaultUpstreamPort       = 5432
	defaultTargetSessionAttrs = "read-write"
	defaultSSLMode            = "prefer"
	defaultConnectTimeout     = 5 * time.Second
	defaultPoolSize           = 20
	defaultQueryWaitTimeout   = 120 * time.Second
	defaultServerIdleTimeout  = 10 * time.Minute
	defaultServerLifetime     = time.Hour
	defaultServerCheckDelay   = 30 * time.Second
	defaultDrainTimeout       = 5 * time.Minute
	defaultPollInterval       = 10 * time.Second
	defaultDrainWait          = 10 * time.Minute
	defaultMaxPrepared        = 200
)

// adminOff is how admin_listen is switched off in YAML.
const adminOff = "off"

// defaultConfig returns a Config holding every top-level default.
func defaultConfig() *Config {
	return &Config{
		Listen:      defaultListen,
		AdminListen: defaultAdminListen,
		Log:         Log{Format: "text", Level: "info"},
		Limits: Limits{
			MaxClientConn:    defaultMaxClientConn,
			AuthTimeout:      Duration{defaultAuthTimeout},
			ShutdownTimeout:  Duration{defaultShutdownTimeout},
			AuthFailureDelay: Duration{defaultAuthFailureDelay},
			EventLoop:        true,
			BatchSends:       true,
		},
		TLS: TLS{Mode: "disable"},
		Upstream: Upstream{
			Host:               defaultUpstreamHost,
			Port:               defaultUpstreamPort,
			SSLMode:            defaultSSLMode,
			TargetSessionAttrs: defaultTargetSessionAttrs,
			ConnectTimeout:     Duration{defaultConnectTimeout},
		},
		Rotation: Rotation{DrainWait: Duration{defaultDrainWait}},
	}
}

// setDefaults fills a database's defaults; name is its key in databases.
func (d *Database) setDefaults(name string) {
	guard := true
	*d = Database{
		Name:              name,
		DBName:            name,
		PoolMode:          PoolSession,
		PoolSize:          defaultPoolSize,
		QueryWaitTimeout:  Duration{defaultQueryWaitTimeout},
		ServerIdleTimeout: Duration{defaultServerIdleTimeout},
		ServerLifetime:    Duration{defaultServerLifetime},
		ServerCheckDelay:  Duration{defaultServerCheckDelay},
		Credentials:       CredentialSource{Format: "auto", PollInterval: Duration{defaultPollInterval}},
		DrainTimeout:      Duration{defaultDrainTimeout},
		RoleGuard:         &guard,

		MaxPreparedStatements: defaultMaxPrepared,
	}
}
