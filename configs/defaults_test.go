package configs_test

import (
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/configs"
)

// TestDefaults: a config that only names a database and a client gets the
// documented defaults for everything else.
func TestDefaults(t *testing.T) {
	c := mustParse(t, validDoc)
	db, ok := c.Database("bookstore")
	if !ok {
		t.Fatal(`Database("bookstore") not found`)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Path", c.Path, "pgrotate.yaml"},
		{"Listen", c.Listen, "127.0.0.1:6432"},
		{"AdminListen", c.AdminListen, "127.0.0.1:9187"},
		{"Log", c.Log, configs.Log{Format: "text", Level: "info"}},
		{"Limits.MaxClientConn", c.Limits.MaxClientConn, 1000},
		{"Limits.AuthTimeout", c.Limits.AuthTimeout.Duration, 10 * time.Second},
		{"Limits.ShutdownTimeout", c.Limits.ShutdownTimeout.Duration, 30 * time.Second},
		{"TLS", c.TLS, configs.TLS{Mode: "disable"}},
		{"Auth.AllowMD5", c.Auth.AllowMD5, false},
		{"Upstream.Host", c.Upstream.Host, "127.0.0.1"},
		{"Upstream.Port", c.Upstream.Port, 5432},
		{"Upstream.SSLMode", c.Upstream.SSLMode, "prefer"},
		{"Upstream.ConnectTimeout", c.Upstream.ConnectTimeout.Duration, 5 * time.Second},
		{"Database.Name", db.Name, "bookstore"},
		{"Database.DBName", db.DBName, "bookstore"},
		{"Database.PoolMode", db.PoolMode, configs.PoolSession},
		{"Database.PoolSize", db.PoolSize, 20},
		{"Database.MinPoolSize", db.MinPoolSize, 0},
		{"Database.QueryWaitTimeout", db.QueryWaitTimeout.Duration, 120 * time.Second},
		{"Database.ServerIdleTimeout", db.ServerIdleTimeout.Duration, 10 * time.Minute},
		{"Database.ServerLifetime", db.ServerLifetime.Duration, time.Hour},
		{"Database.ServerCheckDelay", db.ServerCheckDelay.Duration, 30 * time.Second},
		{"Database.DrainTimeout", db.DrainTimeout.Duration, 5 * time.Minute},
		{"Database.Credentials.Format", db.Credentials.Format, "auto"},
		{"Database.Credentials.PollInterval", db.Credentials.PollInterval.Duration, 10 * time.Second},
		{"Database.RoleGuardEnabled", db.RoleGuardEnabled(), true},
		{"Database.MaxPreparedStatements", db.MaxPreparedStatements, 200},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

// TestSettingsOverrideDefaults: every written key wins over its default,
// durations are read as Go durations or whole seconds, and "off" switches
// the admin server off.
func TestSettingsOverrideDefaults(t *testing.T) {
	c := mustParse(t, yamlLines(
		"listen: ':7432'",
		"admin_listen: off",
		"limits: {auth_timeout: 3, shutdown_timeout: 1h30m}",
		"upstream: {host: /var/run/postgresql, port: 5433, sslmode: verify-full, connect_timeout: 250ms}",
		"databases:",
		"  bookstore:",
		"    dbname: bookstore_prod",
		"    owner_role: bookstore_owner",
		"    pool_mode: transaction",
		"    pool_size: 50",
		"    min_pool_size: 50",
		"    server_check_delay: 5s",
		"    role_guard: false",
		"    credentials: {path: /c.json, format: json, poll_interval: 1m}",
		"clients:",
		"  - {user: bookstore_app, password_verifier: VERIFIER}",
	))
	db, _ := c.Database("bookstore")
	checks := []struct {
		name      string
		got, want any
	}{
		{"Listen", c.Listen, ":7432"},
		{"AdminListen", c.AdminListen, ""},
		{"AuthTimeout", c.Limits.AuthTimeout.Duration, 3 * time.Second},
		{"ShutdownTimeout", c.Limits.ShutdownTimeout.Duration, 90 * time.Minute},
		{"Upstream.Host", c.Upstream.Host, "/var/run/postgresql"},
		{"Upstream.Port", c.Upstream.Port, 5433},
		{"Upstream.SSLMode", c.Upstream.SSLMode, "verify-full"},
		{"Upstream.ConnectTimeout", c.Upstream.ConnectTimeout.Duration, 250 * time.Millisecond},
		{"DBName", db.DBName, "bookstore_prod"},
		{"PoolMode", db.PoolMode, configs.PoolTransaction},
		{"PoolSize", db.PoolSize, 50},
		{"MinPoolSize", db.MinPoolSize, 50},
		{"ServerCheckDelay", db.ServerCheckDelay.Duration, 5 * time.Second},
		{"RoleGuardEnabled", db.RoleGuardEnabled(), false},
		{"Credentials", db.Credentials, configs.CredentialSource{Path: "/c.json", Format: "json", PollInterval: configs.Duration{Duration: time.Minute}}},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

// TestEmptyValuesKeepDefaults: "key:" with nothing after it is YAML null
// and leaves the default in place, like leaving the key out.
func TestEmptyValuesKeepDefaults(t *testing.T) {
	c := mustParse(t, yamlLines(
		"listen:",
		"tls:",
		"databases:",
		"  bookstore:",
		"    owner_role: o",
		"    pool_size: ~",
		"    credentials: {path: /c}",
		"clients:",
		"  - {user: bookstore_app, password_verifier: VERIFIER}",
	))
	db, _ := c.Database("bookstore")
	if c.Listen != "127.0.0.1:6432" || c.TLS.Mode != "disable" || db.PoolSize != 20 {
		t.Errorf("Listen=%q TLS.Mode=%q PoolSize=%d; want the defaults", c.Listen, c.TLS.Mode, db.PoolSize)
	}
}

// TestMergeKeysShareDatabaseSettings: YAML anchors and "<<" let databases
// share settings; keys written next to the merge win.
func TestMergeKeysShareDatabaseSettings(t *testing.T) {
	c := mustParse(t, yamlLines(
		"databases:",
		"  bookstore: &common",
		"    owner_role: bookstore_owner",
		"    pool_mode: transaction",
		"    pool_size: 30",
		"    credentials: {path: /var/run/secrets/bookstore}",
		"  bookstore_replica:",
		"    <<: *common",
		"    pool_size: 10",
		"clients:",
		"  - {user: bookstore_app, password_verifier: VERIFIER}",
	))
	r, _ := c.Database("bookstore_replica")
	if r.OwnerRole != "bookstore_owner" || r.PoolMode != configs.PoolTransaction || r.PoolSize != 10 ||
		r.Credentials.Path != "/var/run/secrets/bookstore" || r.DBName != "bookstore_replica" {
		t.Errorf("merged database = %+v", *r)
	}
}
