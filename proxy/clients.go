package proxy

import (
	"fmt"
	"slices"

	"github.com/pgrotate/pgrotate/auth"
	"github.com/pgrotate/pgrotate/configs"
)

// clientEntry is one client user pgrotate accepts.
type clientEntry struct {
	secrets   []auth.Secret
	databases []string // empty: every database
}

func (c clientEntry) allows(db string) bool {
	return len(c.databases) == 0 || slices.Contains(c.databases, db)
}

// clientDirectory is pgrotate's own list of client users, never the upstream's.
// It is replaced whole on reload, so a lookup sees one consistent version.
type clientDirectory struct {
	users map[string]clientEntry
}

func newClientDirectory(clients []configs.Client) (*clientDirectory, error) {
	d := &clientDirectory{users: make(map[string]clientEntry, len(clients))}
	for _, c := range clients {
		e := clientEntry{databases: c.Databases}
		for i, raw := range c.Secrets() {
			sec, err := auth.ParseSecret(raw)
			if err != nil {
				return nil, fmt.Errorf("client %q: verifier %d: %w", c.User, i+1, err)
			}
			e.secrets = append(e.secrets, sec)
		}
		d.users[c.User] = e
	}
	return d, nil
}

// lookup returns the entry of user; ok=false (and no secrets) when unknown.
func (d *clientDirectory) lookup(user string) (clientEntry, bool) {
	e, ok := d.users[user]
	return e, ok
}
