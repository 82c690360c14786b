package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgrotate/pgrotate/configs"
	"github.com/pgrotate/pgrotate/proxy"
	"github.com/pgrotate/pgrotate/rotation"
)

// Daemon is one running pgrotate.
type Daemon struct {
	cfg   *configs.Config
	log   *slog.Logger
	proxy *proxy.Server
	dbs   []*database
	tls   *proxy.ClientTLS
	reg   *prometheus.Registry // what /metrics serves
	// draining is set when Shutdown begins.
	draining atomic.Bool
	clients  clientState
}

// database is the rotation machinery of one configured database.
type database struct {
	cfg     *configs.Database
	manager *rotation.Manager
	watcher *rotation.Watcher
	rotator *rotation.Scheduler // nil unless rotation.admin_url and rotation.interval are set
}

// New wires a Daemon; it opens no socket and no connection yet.
func New(cfg *configs.Config, log *slog.Logger) (*Daemon, error) {
	d := &Daemon{cfg: cfg, log: log, reg: newRegistry()}
	creds := make(map[string]proxy.Credentials)
	for name, db := range cfg.Databases {
		up, err := proxy.NewUpstream(cfg.Upstream, db)
		if err != nil {
			return nil, fmt.Errorf("database %q: %w", name, err)
		}
		dbl := log.With("database", name)
		m := rotation.NewManager(rotation.ManagerConfig{
			Database: name,
			Validate: up.Validate,
			// Called from the manager's goroutine, after New has set d.proxy.
			OnPromote: func(prev, next rotation.Generation) { d.proxy.Promoted(name, prev, next) },
			Logger:    log, // the manager names the database itself
		})
		w, err := rotation.NewWatcher(rotation.WatchConfig{
			Path:         db.Credentials.Path,
			Format:       rotation.Format(db.Credentials.Format),
			PollInterval: db.Credentials.PollInterval.Duration,
			Logger:       dbl,
			OnChange:     m.Offer,
		})
		if err != nil {
			return nil, fmt.Errorf("database %q: %w", name, err)
		}
		for _, warn := range rotation.Warnings(db.Credentials.Path, rotation.Format(db.Credentials.Format)) {
			dbl.Warn(warn)
		}
		d.dbs = append(d.dbs, &database{cfg: db, manager: m, watcher: w, rotator: rotation.NewScheduler(cfg, db, dbl)})
		creds[name] = m
	}
	var err error
	if d.tls, err = proxy.NewClientTLS(cfg.TLS, log); err != nil {
		return nil, err
	}
	fromFiles, sum, err := readPasswordFiles(cfg.Clients)
	if err != nil {
		return nil, err
	}
	d.clients.clients, d.clients.hash = cfg.Clients, sum
	srv, err := proxy.New(proxy.Options{
		Config:                 cfg,
		Credentials:            creds,
		OnUpstreamAuthFailure:  d.reread,
		Logger:                 log,
		TLS:                    d.tls,
		Metrics:                proxy.NewMetrics(d.reg),
		ClientSecretsFromFiles: fromFiles,
	})
	if err != nil {
		return nil, err
	}
	d.proxy = srv
	d.reg.MustRegister(proxy.NewPoolCollector(srv), newRotationCollector(d))
	return d, nil
}

// Listeners are the sockets a Daemon serves on; the caller opens them so that
// start-up fails fast on an unusable address.
type Listeners struct {
	Clients net.Listener
	Unix    net.Listener // nil: no Unix socket
	Admin   net.Listener // nil: no admin endpoints
}

// Close closes every listener that is open.
func (ls Listeners) Close() {
	for _, ln := range []net.Listener{ls.Clients, ls.Unix, ls.Admin} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// Listen opens the listeners the config asks for.
func Listen(cfg *configs.Config) (Listeners, error) {
	var ls Listeners
	var err error
	if ls.Clients, err = listenTCP(cfg.Listen); err != nil {
		return ls, fmt.Errorf("listening for clients on %s: %w", cfg.Listen, err)
	}
	if cfg.UnixSocketDir != "" {
		if ls.Unix, err = listenUnix(cfg.UnixSocketDir, ls.Clients.Addr()); err != nil {
			ls.Close()
			return Listeners{}, err
		}
	}
	if cfg.AdminListen != "" {
		if ls.Admin, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			ls.Close()
			return Listeners{}, fmt.Errorf("listening for admin requests on %s: %w", cfg.AdminListen, err)
		}
	}
	return ls, nil
}

// listenUnix listens on dir/.s.PGSQL.<port>, the name libpq looks for with
// host=dir port=<port>. A socket file left by a crashed pgrotate is removed
// first; one still answering is another pgrotate, and an error.
func listenUnix(dir string, tcp net.Addr) (net.Listener, error) {
	port := tcp.(*net.TCPAddr).Port
	path := filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", port))
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("listening on %s: another process is listening there", path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on Unix socket %s: %w", path, err)
	}
	_ = os.Chmod(path, 0o777) // who may connect is decided by authentication, as with PostgreSQL
	return ln, nil
}

// Run serves clients on ln until ctx is done, then closes everything and
// returns. Credential watchers and managers run alongside.
func (d *Daemon) Run(ctx context.Context, ln net.Listener) error {
	return d.RunAll(ctx, Listeners{Clients: ln})
}

// RunAll is Run with the admin endpoints too.
func (d *Daemon) RunAll(ctx context.Context, ls Listeners) error {
	ln := ls.Clients
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if ls.Admin != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.serveAdmin(ctx, ls.Admin); err != nil {
				d.log.Error("admin endpoints stopped", "err", err)
			}
		}()
	}
	for _, db := range d.dbs {
		wg.Add(2)
		go func() { defer wg.Done(); _ = db.manager.Run(ctx) }()
		go func() { defer wg.Done(); _ = db.watcher.Run(ctx) }()
		if db.rotator != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := db.rotator.Run(ctx); err != nil {
					d.log.Error("scheduled rotation stopped", "database", db.cfg.Name, "err", err)
				}
			}()
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = d.tls.Run(ctx) }()
	wg.Add(2)
	go func() { defer wg.Done(); d.proxy.Maintain(ctx) }()
	go func() { defer wg.Done(); d.watchClientFiles(ctx) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- d.proxy.Serve(ctx, ln) }()
	if ls.Unix != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.proxy.Serve(ctx, ls.Unix); err != nil {
				d.log.Error("unix socket listener stopped", "err", err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
		_ = d.proxy.Close()
		err = <-serveErr
	case err = <-serveErr:
		if err == nil { // Shutdown stopped accepting: the caller ends Run
			<-ctx.Done()
		}
	}
	cancel()
	_ = d.proxy.Close()
	wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// WaitReady blocks until every database has a validated credential.
func (d *Daemon) WaitReady(ctx context.Context) error {
	for _, db := range d.dbs {
		if err := db.manager.WaitReady(ctx); err != nil {
			return fmt.Errorf("waiting for a credential of %q: %w", db.cfg.Name, err)
		}
	}
	return nil
}

// reread re-reads one database's credential source now.
func (d *Daemon) reread(name string) {
	for _, db := range d.dbs {
		if db.cfg.Name == name {
			db.watcher.Reread()
		}
	}
}

// Reload re-reads the config file's clients, every credential source and
// the TLS certificate now (SIGHUP).
func (d *Daemon) Reload() {
	d.reloadConfig()
	for _, db := range d.dbs {
		db.watcher.Reread()
		db.manager.RetryNow() // a candidate waiting out its backoff
	}
	d.tls.Reload()
}

// Shutdown stops accepting clients and disconnects the connected ones with
// 57P01 between their transactions, forcing the rest when ctx ends (see
// proxy.Server.Shutdown). /readyz answers 503 from the start, so load
// balancers stop sending clients. Cancel Run's context afterwards.
func (d *Daemon) Shutdown(ctx context.Context) (forced bool) {
	d.draining.Store(true)
	return d.proxy.Shutdown(ctx)
}
