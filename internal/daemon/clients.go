package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pgrotate/pgrotate/configs"
)

// Client users can change without a restart: their password_file (several
// verifiers valid at once, so an app's own password rotates with overlap) is
// watched, and SIGHUP re-reads the clients of the config file. Either way
// the new list is parsed whole before it replaces the old one.

// clientFilePoll is how often password files are re-read.
const clientFilePoll = time.Second

// clientState is what the client list was last built from.
type clientState struct {
	mu      sync.Mutex
	clients []configs.Client
	hash    [sha256.Size]byte // of the password files' contents
}

// readPasswordFiles reads every client's password_file: one verifier per
// line; blank lines and lines starting with # are skipped.
func readPasswordFiles(clients []configs.Client) (map[string][]string, [sha256.Size]byte, error) {
	out := make(map[string][]string)
	h := sha256.New()
	for _, c := range clients {
		if c.PasswordFile == "" {
			continue
		}
		data, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, [sha256.Size]byte{}, fmt.Errorf("client %q: reading password_file: %w", c.User, err)
		}
		h.Write(data)
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line != "" && !strings.HasPrefix(line, "#") {
				out[c.User] = append(out[c.User], line)
			}
		}
		if len(out[c.User]) == 0 && len(c.Secrets()) == 0 {
			return nil, [sha256.Size]byte{}, fmt.Errorf("client %q: password_file %s holds no verifier", c.User, c.PasswordFile)
		}
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return out, sum, nil
}

// refreshClients rebuilds the proxy's client list from clients and their
// files when anything changed; on any error the current list stays.
func (d *Daemon) refreshClients(clients []configs.Client, force bool) {
	d.clients.mu.Lock()
	defer d.clients.mu.Unlock()
	fromFiles, sum, err := readPasswordFiles(clients)
	if err != nil {
		d.log.Warn("client verifiers not reloaded; keeping the current ones", "err", err)
		return
	}
	if !force && sum == d.clients.hash {
		return
	}
	if err := d.proxy.SetClients(clients, fromFiles); err != nil {
		d.log.Warn("client verifiers not reloaded; keeping the current ones", "err", err)
		return
	}
	d.clients.clients, d.clients.hash = clients, sum
	d.log.Info("client verifiers reloaded", "clients", len(clients))
}

// watchClientFiles re-reads password files until ctx is done.
func (d *Daemon) watchClientFiles(ctx context.Context) {
	tick := time.NewTicker(clientFilePoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			d.clients.mu.Lock()
			clients := d.clients.clients
			d.clients.mu.Unlock()
			d.refreshClients(clients, false)
		}
	}
}

// reloadConfig re-reads the config file (SIGHUP). The client list takes
// effect at once; other changes need a restart, which the log says.
func (d *Daemon) reloadConfig() {
	if d.cfg.Path == "" {
		return
	}
	cfg, err := configs.Load(d.cfg.Path)
	if err != nil {
		d.log.Error("config not reloaded; keeping the current one", "err", err)
		return
	}
	if !sameApartFromClients(cfg, d.cfg) {
		d.log.Warn("config changes other than clients take effect after a restart", "config", d.cfg.Path)
	}
	d.refreshClients(cfg.Clients, true)
}

// sameApartFromClients compares two configs, the client list left out.
func sameApartFromClients(a, b *configs.Config) bool {
	strip := func(c *configs.Config) []byte {
		cp := *c
		cp.Clients = nil
		out, _ := json.Marshal(cp)
		return out
	}
	return bytes.Equal(strip(a), strip(b))
}
