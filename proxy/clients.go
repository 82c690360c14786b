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

// newClientDirectory parses every client's verifiers: those in the config
// and, from fromFiles, those read from its password_file.
func newClientDirectory(clients []configs.Client, fromFiles map[string][]string) (*clientDirectory, error) {
	d := &clientDirectory{users: make(map[string]clientEntry, len(clients))}
	for _, c := range clients {
		e := clientEntry{databases: c.Databases}
		first := -1 // the first SCRAM verifier
		for i, raw := range append(c.Secrets(), fromFiles[c.User]...) {
			sec, err := auth.ParseSecret(raw)
			if err != nil {
				return nil, fmt.Errorf("client %q: verifier %d: %w", c.User, i+1, err)
			}
			switch {
			case sec.Method() != auth.MethodSCRAM:
			case first < 0:
				first = len(e.secrets)
			case !sec.SameKeyFactors(e.secrets[first]):
				// A SCRAM login shows the client one salt before it proves
				// its password: a verifier with another could never log in.
				return nil, fmt.Errorf("client %q: verifier %d has another salt or iteration count than verifier %d, "+
					"so its password could never log in: make it with pgrotate passwd -overlap '<verifier %d>'",
					c.User, i+1, first+1, first+1)
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

// SetClients replaces the list of client users, all at once: a login in
// progress finishes against the list it started with. On an unparsable
// verifier it returns the error and keeps the current list.
func (s *Server) SetClients(clients []configs.Client, fromFiles map[string][]string) error {
	dir, err := newClientDirectory(clients, fromFiles)
	if err != nil {
		return err
	}
	s.clients.Store(dir)
	return nil
}
