package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// PgBouncer database names, one per pool mode.
const (
	bouncerSessionDB = "bookstore_session"
	bouncerTxDB      = "bookstore_tx"
)

// bouncer is a running PgBouncer with one database per pool mode.
type bouncer struct {
	proc    *daemon
	port    int
	version string // "1.18.0"
	// preparedInTx: PgBouncer tracks named prepared statements across
	// transaction-mode server connections only from 1.21 on
	// (max_prepared_statements); before that pgbench -M prepared fails.
	preparedInTx bool
}

// findBouncer locates the pgbouncer binary; Debian puts it in /usr/sbin,
// which is not on every PATH.
func findBouncer() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if p := "/usr/sbin/pgbouncer"; isExecutable(p) {
		return p, nil
	}
	return "", fmt.Errorf("finding pgbouncer: not installed (bench/run.sh installs it with apt-get)")
}

// bouncerVersion runs "pgbouncer --version" and returns "1.18.0" and
// whether that version keeps prepared statements in transaction mode.
func bouncerVersion(ctx context.Context, bin string) (string, bool, error) {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", false, fmt.Errorf("asking pgbouncer for its version: %w", err)
	}
	m := regexp.MustCompile(`PgBouncer (\d+)\.(\d+)(\.\d+)?`).FindStringSubmatch(string(out))
	if m == nil {
		return "", false, fmt.Errorf("asking pgbouncer for its version: unexpected %q", firstLine(string(out)))
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return strings.TrimPrefix(m[0], "PgBouncer "), major > 1 || minor >= 21, nil
}

// startBouncer writes a config to dir and starts PgBouncer in the
// foreground (so its process is ours to measure), as the "postgres" OS
// user when we are root.
func startBouncer(ctx context.Context, dir string, db *database, s settings) (*bouncer, error) {
	bin, err := findBouncer()
	if err != nil {
		return nil, err
	}
	b := &bouncer{}
	if b.version, b.preparedInTx, err = bouncerVersion(ctx, bin); err != nil {
		return nil, err
	}
	if b.port, err = freePort(); err != nil {
		return nil, err
	}
	who, err := unprivilegedIdentity()
	if err != nil {
		return nil, err
	}
	ini, err := b.writeConfig(dir, db, s, who)
	if err != nil {
		return nil, err
	}
	b.proc, err = startDaemon("PgBouncer", filepath.Join(dir, "pgbouncer.out"), who.cred, bin, ini)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// writeConfig writes pgbouncer.ini and the auth_file, readable by who.
// Clients authenticate with SCRAM against the executing role's verifier
// copied from pg_authid; PgBouncer logs in upstream with the password.
func (b *bouncer) writeConfig(dir string, db *database, s settings, who osIdentity) (string, error) {
	userlist := filepath.Join(dir, "userlist.txt")
	ini := filepath.Join(dir, "pgbouncer.ini")
	files := map[string]string{
		userlist: fmt.Sprintf("%q %q\n", execRole, db.execVerifier),
		ini:      b.configText(userlist, db, s),
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return "", fmt.Errorf("writing PgBouncer config: %w", err)
		}
		if err := who.give(path); err != nil {
			return "", err
		}
	}
	if err := who.give(dir); err != nil {
		return "", err
	}
	return ini, nil
}

// configText is pgbouncer.ini. The session pool is as large as the most
// clients of any row, so session rows compare relay cost rather than
// queueing; the transaction pool is -pool.
func (b *bouncer) configText(userlist string, db *database, s settings) string {
	server := fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s password=%s",
		db.cluster.Port, dbName, execRole, db.execPassword)
	var extra string
	if b.preparedInTx {
		extra = "max_prepared_statements = 200\n"
	}
	return fmt.Sprintf(`[databases]
%s = %s pool_mode=session pool_size=%d
%s = %s pool_mode=transaction pool_size=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = session
default_pool_size = %d
max_client_conn = 1000
server_reset_query = DISCARD ALL
log_connections = 0
log_disconnections = 0
%s`,
		bouncerSessionDB, server, s.maxClients(),
		bouncerTxDB, server, s.txPoolSize,
		b.port, userlist, s.txPoolSize, extra)
}

// target is the PgBouncer database for a pool mode.
func (b *bouncer) target(mode, password string) target {
	db := bouncerSessionDB
	if mode == "transaction" {
		db = bouncerTxDB
	}
	return target{name: "PgBouncer", port: b.port, user: execRole, password: password, db: db, proc: b.proc}
}

// firstLine is the first line of s.
func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
