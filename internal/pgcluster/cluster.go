package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Cluster is a running throwaway PostgreSQL cluster. Its exported fields are
// read-only after Start. Stop it when done: it owns a server process and a
// temporary directory.
type Cluster struct {
	BinDir, DataDir, SocketDir, LogFile string
	Host                                string // "127.0.0.1"
	Port                                int
	Version                             int // server major version, e.g. 15

	opts    Options
	user    serverUser
	baseDir string // the one MkdirTemp directory holding everything else

	mu      sync.Mutex // guards stopped; held across Stop and Restart
	stopped bool
	ddlMu   sync.Mutex // serialises the role helpers: concurrent GRANTs on one role can fail
}

// maxSocketPath is the usable length of sun_path on Linux (108 bytes with
// the terminating NUL); PostgreSQL refuses longer socket paths.
const maxSocketPath = 107

// Start creates a cluster in a new temporary directory under os.TempDir(),
// starts it and waits until it accepts connections, all within ctx. On error
// nothing is left behind: no process, no directory.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	binDir, err := findBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	u, err := resolveServerUser(opts.RunAs)
	if err != nil {
		return nil, err
	}
	base, err := os.MkdirTemp(os.TempDir(), "pgcluster-")
	if err != nil {
		return nil, fmt.Errorf("creating cluster directory: %w", err)
	}
	c := &Cluster{
		BinDir:    binDir,
		DataDir:   filepath.Join(base, "data"),
		SocketDir: filepath.Join(base, "sock"),
		LogFile:   filepath.Join(base, "server.log"),
		Host:      "127.0.0.1",
		opts:      opts,
		user:      u,
		baseDir:   base,
	}
	if err := c.setUp(ctx); err != nil {
		if stopErr := c.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up after failed start: %w", stopErr))
		}
		return nil, err
	}
	return c, nil
}

// setUp runs initdb, writes the configuration and starts the server.
func (c *Cluster) setUp(ctx context.Context) error {
	if len(c.SocketDir)+len("/.s.PGSQL.65535") > maxSocketPath {
		return fmt.Errorf("creating socket directory: path %s is too long for a unix socket; use a shorter TMPDIR", c.SocketDir)
	}
	if err := c.user.chown(c.baseDir); err != nil {
		return err
	}
	if err := os.Mkdir(c.SocketDir, 0o700); err != nil {
		return fmt.Errorf("creating socket directory: %w", err)
	}
	if err := c.user.chown(c.SocketDir); err != nil {
		return err
	}
	if err := c.initdb(ctx); err != nil {
		return err
	}
	if err := c.configure(); err != nil {
		return err
	}
	if err := c.startOnFreePort(ctx); err != nil {
		return err
	}
	c.opts.logf("pgcluster: PostgreSQL %d ready on %s:%d (socket %s, log %s)", c.Version, c.Host, c.Port, c.SocketDir, c.LogFile)
	return nil
}

// initdb creates the data directory. Auth methods are set again by
// configure; passing them here keeps initdb from warning about trust.
func (c *Cluster) initdb(ctx context.Context) error {
	c.opts.logf("pgcluster: initdb %s (as %s)", c.DataDir, c.user.name)
	out, err := c.user.run(ctx, c.baseDir, c.bin("initdb"),
		"-D", c.DataDir, "-U", "postgres",
		"--auth-local=trust", "--auth-host=scram-sha-256",
		"--encoding=UTF8", "--locale=C",
		"--no-sync") // a throwaway cluster does not need initdb's fsyncs
	if err != nil {
		return fmt.Errorf("running initdb as %s: %w\n%s", c.user.name, err, lastLines(out, 20))
	}
	return nil
}

// startOnFreePort starts the server, picking another port when the chosen
// free port was taken in the meantime. An explicit Options.Port is tried once.
func (c *Cluster) startOnFreePort(ctx context.Context) error {
	const attempts = 5
	for i := 1; ; i++ {
		port := c.opts.Port
		if port == 0 {
			var err error
			if port, err = freePort(); err != nil {
				return err
			}
		}
		c.Port = port
		if err := c.writeSettings(port); err != nil {
			return err
		}
		logStart := fileSize(c.LogFile)
		err := c.pgCtl(ctx, "start")
		if err == nil {
			return nil
		}
		if c.opts.Port != 0 || i == attempts || ctx.Err() != nil || !c.logSaysPortTaken(logStart) {
			return err
		}
		c.opts.logf("pgcluster: port %d was taken, retrying on another", port)
		if stopErr := c.stopServer(); stopErr != nil {
			return errors.Join(err, stopErr)
		}
	}
}

// logSaysPortTaken reports whether the server log written since offset
// shows a failed bind.
func (c *Cluster) logSaysPortTaken(offset int64) bool {
	text := readFrom(c.LogFile, offset)
	return strings.Contains(text, "Address already in use") ||
		strings.Contains(text, "could not bind IPv4 address")
}

// Restart restarts the server with a fast shutdown (pg_ctl restart -m fast)
// on the same port and waits until it accepts connections again. Every open
// session is ended. It also brings back a server that was stopped or killed
// behind the Cluster's back.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("restarting cluster: it was stopped")
	}
	c.opts.logf("pgcluster: restarting %s:%d", c.Host, c.Port)
	return c.pgCtl(ctx, "restart", "-m", "fast")
}

// Stop shuts the server down (fast, escalating to immediate and then to
// SIGKILL) and removes every directory Start made. It is idempotent and safe
// after the server died or was stopped externally.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	err := c.stopServer()
	if rmErr := os.RemoveAll(c.baseDir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("removing cluster directory: %w", rmErr))
	}
	return err
}

func (c *Cluster) bin(name string) string { return filepath.Join(c.BinDir, name) }
