package configs

import "slices"

// Client returns the client with the given user name.
func (c *Config) Client(user string) (*Client, bool) {
	for i := range c.Clients {
		if c.Clients[i].User == user {
			return &c.Clients[i], true
		}
	}
	return nil, false
}

// Database returns the database clients know as name.
func (c *Config) Database(name string) (*Database, bool) {
	d, ok := c.Databases[name]
	return d, ok && d != nil
}

// Allows reports whether the client may connect to database; a client with
// no databases listed may connect to all of them.
func (c Client) Allows(database string) bool {
	return len(c.Databases) == 0 || slices.Contains(c.Databases, database)
}

// Secrets returns the client's inline verifiers: PasswordVerifier (when set)
// followed by PasswordVerifiers, as written. PasswordFile is read by the
// caller, which watches it.
func (c Client) Secrets() []string {
	out := make([]string, 0, 1+len(c.PasswordVerifiers))
	if c.PasswordVerifier != "" {
		out = append(out, c.PasswordVerifier)
	}
	return append(out, c.PasswordVerifiers...)
}

// RoleGuardEnabled reports whether statements that change role are
// rejected for this database; it is true unless role_guard is false.
func (d *Database) RoleGuardEnabled() bool {
	return d.RoleGuard == nil || *d.RoleGuard
}
