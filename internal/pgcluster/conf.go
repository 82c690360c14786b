package pgcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// hbaConf is the whole pg_hba.conf. Order matters: the first matching line
// wins, so the superuser's trust line must precede the scram line for local.
// Nothing matches IPv6 or other addresses: the server only listens on
// 127.0.0.1 anyway.
const hbaConf = `# written by pgrotate's pgcluster
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 trust
local   all       all                      scram-sha-256
host    all       all       127.0.0.1/32   scram-sha-256
`

// includeFile is included from postgresql.conf and rewritten for each start
// attempt, so a retry on another port does not edit postgresql.conf itself.
const includeFile = "pgcluster.conf"

// baseSettings are the throwaway-cluster settings of pgcluster.sh, scaled
// down for a shared test machine. Options.Settings override them.
func baseSettings(port int, socketDir string) map[string]string {
	return map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    fmt.Sprint(port),
		"unix_socket_directories": socketDir,
		"password_encryption":     "scram-sha-256",
		"max_connections":         "300",
		"shared_buffers":          "64MB",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"log_connections":         "on",
		"log_disconnections":      "on",
	}
}

// renderSettings formats settings as postgresql.conf lines, sorted for a
// stable file. Every value is single-quoted, which the config parser accepts
// for any parameter type; quotes inside are doubled.
func renderSettings(settings map[string]string) (string, error) {
	names := make([]string, 0, len(settings))
	for name := range settings {
		if !validSettingName(name) {
			return "", fmt.Errorf("writing postgresql.conf: invalid setting name %q", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# written by pgrotate's pgcluster; rewritten on every start\n")
	for _, name := range names {
		v := strings.ReplaceAll(settings[name], `'`, `''`)
		if strings.ContainsAny(v, "\n\r") {
			return "", fmt.Errorf("writing postgresql.conf: value of %s contains a line break", name)
		}
		fmt.Fprintf(&b, "%s = '%s'\n", name, v)
	}
	return b.String(), nil
}

// configure writes pg_hba.conf and hooks includeFile into postgresql.conf
// once, right after initdb.
func (c *Cluster) configure() error {
	if err := c.writeOwned(filepath.Join(c.DataDir, "pg_hba.conf"), hbaConf); err != nil {
		return err
	}
	conf := filepath.Join(c.DataDir, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening postgresql.conf: %w", err)
	}
	_, err = fmt.Fprintf(f, "\ninclude '%s'\n", includeFile)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("appending to postgresql.conf: %w", err)
	}
	return nil
}

// writeSettings (re)writes includeFile for the given port.
func (c *Cluster) writeSettings(port int) error {
	all := baseSettings(port, c.SocketDir)
	for k, v := range c.opts.Settings {
		all[k] = v
	}
	text, err := renderSettings(all)
	if err != nil {
		return err
	}
	return c.writeOwned(filepath.Join(c.DataDir, includeFile), text)
}

// writeOwned writes a private file the server user can read.
func (c *Cluster) writeOwned(path, text string) error {
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	return c.user.chown(path)
}
