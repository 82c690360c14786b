package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/pgrotate/pgrotate/auth"
	"github.com/pgrotate/pgrotate/configs"
	"github.com/pgrotate/pgrotate/internal/daemon"
)

// Names the demo gives things, as in DESIGN.md §1.
const (
	dbName    = "bookstore"
	ownerRole = "bookstore_owner"
	appUser   = "demo_app"
)

// drainTimeout is the database's drain_timeout, and drainMargin the extra
// time the demo allows before it reports a rotation as not drained.
const (
	drainTimeout = 10 * time.Second
	drainMargin  = 5 * time.Second
)

// configTemplate is the pgrotate config of the demo, in the same YAML a user
// writes. Listen is "127.0.0.1:0" because the demo creates the listener
// itself and hands it to the daemon; the admin server is off because the
// demo reads Daemon.Status directly.
const configTemplate = `listen: 127.0.0.1:0
admin_listen: "off"
upstream: {host: %q, port: %d, sslmode: disable}
databases:
  bookstore:
    owner_role: bookstore_owner
    pool_mode: session
    pool_size: %d
    drain_timeout: %s
    credentials: {path: %q, poll_interval: 1s}
clients:
  - user: demo_app
    password_verifier: %q
    databases: [bookstore]
`

// pgrotateConfig builds and validates the demo's config. The verifier's "$"
// are doubled because config values expand ${VAR}.
func pgrotateConfig(host string, port, poolSize int, secretPath, appPassword string) (*configs.Config, error) {
	verifier, err := auth.NewSCRAMVerifier(appPassword, 4096)
	if err != nil {
		return nil, err
	}
	text := fmt.Sprintf(configTemplate, host, port, poolSize, drainTimeout,
		secretPath, strings.ReplaceAll(verifier, "$", "$$"))
	return configs.Parse([]byte(text), "demo.yaml")
}

// poolSize is the pool_size for n transaction workers: in session mode each
// client holds a server connection, plus the migration worker, plus room
// for the moment a client reconnects while its old connection closes.
func poolSize(clients int) int {
	return max(10, clients+3)
}

// runningDaemon is pgrotate running on its own listener.
type runningDaemon struct {
	*daemon.Daemon
	addr string
	stop context.CancelFunc
	done chan error
}

// startDaemon starts pgrotate on a free port of 127.0.0.1 and waits until it
// has validated its first credential.
func startDaemon(ctx context.Context, cfg *configs.Config, log *slog.Logger) (*runningDaemon, error) {
	d, err := daemon.New(cfg, log)
	if err != nil {
		return nil, fmt.Errorf("configuring pgrotate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for clients: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r := &runningDaemon{Daemon: d, addr: ln.Addr().String(), stop: stop, done: make(chan error, 1)}
	go func() { r.done <- d.Run(runCtx, ln) }()
	readyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.WaitReady(readyCtx); err != nil {
		return nil, errors.Join(fmt.Errorf("starting pgrotate: %w", err), r.close())
	}
	return r, nil
}

// close stops pgrotate and waits until it has closed every connection.
func (r *runningDaemon) close() error {
	r.stop()
	if err := <-r.done; err != nil {
		return fmt.Errorf("stopping pgrotate: %w", err)
	}
	return nil
}
