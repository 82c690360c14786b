package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// pgrotate database names, one per pool mode; both are the server's
// bookstore database.
const (
	pgrotateSessionDB = "bookstore"
	pgrotateTxDB      = "bookstore_tx"
)

// proxy is a running pgrotate, started from the binary under test as a
// separate process so its CPU time is its own.
type proxy struct {
	proc        *daemon
	port        int
	appPassword string // bench_app's password
	credDir     string // the executing role's credential (format dir)
}

// startPgrotate writes a credential directory and a config to dir and
// starts "pgrotate serve".
func startPgrotate(ctx context.Context, dir string, db *database, s settings) (*proxy, error) {
	p := &proxy{appPassword: randomSecret()}
	var err error
	if p.port, err = freePort(); err != nil {
		return nil, err
	}
	credDir := filepath.Join(dir, "credential")
	p.credDir = credDir
	if err := writeCredentialDir(credDir, db.current.role, db.current.password); err != nil {
		return nil, err
	}
	verifier, err := makeVerifier(ctx, s.pgrotateBin, p.appPassword)
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "pgrotate.yaml")
	if err := os.WriteFile(cfg, []byte(p.configText(db, s, credDir, verifier)), 0o600); err != nil {
		return nil, fmt.Errorf("writing pgrotate config: %w", err)
	}
	p.proc, err = startDaemon("pgrotate", filepath.Join(dir, "pgrotate.out"), nil,
		s.pgrotateBin, "serve", "-config", cfg)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// writeCredentialDir lays out the executing role's credential as a
// directory with "username" and "password" files (credentials format dir).
func writeCredentialDir(dir, user, password string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("writing pgrotate credential: %w", err)
	}
	for name, value := range map[string]string{"username": user, "password": password} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0o600); err != nil {
			return fmt.Errorf("writing pgrotate credential: %w", err)
		}
	}
	return nil
}

// makeVerifier asks "pgrotate passwd" for a SCRAM verifier of password,
// the way an operator makes one.
func makeVerifier(ctx context.Context, bin, password string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, "passwd")
	cmd.Stdin = strings.NewReader(password)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("making a verifier with pgrotate passwd: %w: %s", err, firstLine(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// configText is pgrotate.yaml: one database per pool mode, pools sized
// like PgBouncer's (see bouncer.configText), logging only warnings so that
// logging costs no CPU during the runs.
func (p *proxy) configText(db *database, s settings, credDir, verifier string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:%d
admin_listen: "off"
log: {level: warn}
limits: {max_client_conn: 1000}
upstream: {host: 127.0.0.1, port: %d, sslmode: disable}
databases:
  %s:
    owner_role: %s
    pool_mode: session
    pool_size: %d
    credentials: {path: %s, format: dir}
  %s:
    dbname: %s
    owner_role: %s
    pool_mode: transaction
    pool_size: %d
    credentials: {path: %s, format: dir}
clients:
  - user: %s
    password_verifier: %q
    databases: [%s, %s]
`, p.port, db.cluster.Port,
		pgrotateSessionDB, ownerRole, s.maxClients(), credDir,
		pgrotateTxDB, dbName, ownerRole, s.txPoolSize, credDir,
		appUser, verifier, pgrotateSessionDB, pgrotateTxDB)
}

// target is the pgrotate database for a pool mode.
func (p *proxy) target(mode string) target {
	db := pgrotateSessionDB
	if mode == "transaction" {
		db = pgrotateTxDB
	}
	return target{name: "pgrotate", port: p.port, user: appUser, password: p.appPassword, db: db, proc: p.proc}
}
