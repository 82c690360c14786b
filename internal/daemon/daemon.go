package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

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
}

// database is the rotation machinery of one configured database.
type database struct {
	cfg     *configs.Database
	manager *rotation.Manager
	watcher *rotation.Watcher
}

// New wires a Daemon; it opens no socket and no connection yet.
func New(cfg *configs.Config, log *slog.Logger) (*Daemon, error) {
	d := &Daemon{cfg: cfg, log: log}
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
			dbl.Warn("credential source: " + warn)
		}
		d.dbs = append(d.dbs, &database{cfg: db, manager: m, watcher: w})
		creds[name] = m
	}
	srv, err := proxy.New(proxy.Options{
		Config:                cfg,
		Credentials:           creds,
		OnUpstreamAuthFailure: d.reread,
		Logger:                log,
	})
	if err != nil {
		return nil, err
	}
	d.proxy = srv
	return d, nil
}

// Listeners are the sockets a Daemon serves on; the caller opens them so that
// start-up fails fast on an unusable address.
type Listeners struct {
	Clients net.Listener
	Admin   net.Listener // nil: no admin endpoints
}

// Listen opens the listeners the config asks for.
func Listen(cfg *configs.Config) (Listeners, error) {
	var ls Listeners
	var err error
	if ls.Clients, err = net.Listen("tcp", cfg.Listen); err != nil {
		return ls, fmt.Errorf("listening for clients on %s: %w", cfg.Listen, err)
	}
	if cfg.AdminListen != "" {
		if ls.Admin, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			ls.Clients.Close()
			return ls, fmt.Errorf("listening for admin requests on %s: %w", cfg.AdminListen, err)
		}
	}
	return ls, nil
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
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- d.proxy.Serve(ctx, ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	cancel()
	_ = d.proxy.Close()
	wg.Wait()
	if err == nil {
		err = <-serveErr
	}
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

// Reload re-reads every credential source now (SIGHUP).
func (d *Daemon) Reload() {
	for _, db := range d.dbs {
		db.watcher.Reread()
	}
}
