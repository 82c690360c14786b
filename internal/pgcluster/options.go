package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Options configures Start. The zero value is a usable configuration.
type Options struct {
	BinDir   string                           // "" = newest /usr/lib/postgresql/<v>/bin that has initdb, else initdb from PATH
	Port     int                              // 0 = a free TCP port on 127.0.0.1
	Settings map[string]string                // extra postgresql.conf settings
	RunAs    string                           // OS user to run initdb/postgres as when we are root; default "postgres"
	Logf     func(format string, args ...any) // optional progress log
}

// debianBinGlob is where Debian and Ubuntu install one directory per server
// major version.
const debianBinGlob = "/usr/lib/postgresql/*/bin/initdb"

// findBinDir returns the directory holding initdb, pg_ctl and postgres.
func findBinDir(explicit string) (string, error) {
	dir := explicit
	if dir == "" {
		dir = newestDebianBinDir()
	}
	if dir == "" {
		p, err := exec.LookPath("initdb")
		if err != nil {
			return "", errors.New("finding PostgreSQL server binaries: no " + debianBinGlob +
				" and no initdb on PATH (install the postgresql package or set Options.BinDir)")
		}
		dir = filepath.Dir(p)
	}
	for _, tool := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, tool)); err != nil {
			return "", fmt.Errorf("finding PostgreSQL server binaries in %s: %w", dir, err)
		}
	}
	return dir, nil
}

// newestDebianBinDir returns the bin dir of the highest installed major
// version, or "" when there is none.
func newestDebianBinDir() string {
	matches, _ := filepath.Glob(debianBinGlob)
	sort.Slice(matches, func(i, j int) bool {
		return versionOfPath(matches[i]) < versionOfPath(matches[j])
	})
	if len(matches) == 0 {
		return ""
	}
	return filepath.Dir(matches[len(matches)-1])
}

// versionOfPath extracts <v> from /usr/lib/postgresql/<v>/bin/initdb as a
// sortable number ("9.6" → 9.6, "15" → 15), so 10 sorts after 9.6.
func versionOfPath(p string) float64 {
	v := filepath.Base(filepath.Dir(filepath.Dir(p)))
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return -1
	}
	return f
}

// validSettingName reports whether name may be written to postgresql.conf
// unquoted: GUC names (and custom "ext.name" ones) are letters, digits,
// underscores and dots.
func validSettingName(name string) bool {
	if name == "" {
		return false
	}
	return strings.Trim(strings.ToLower(name), "abcdefghijklmnopqrstuvwxyz0123456789_.") == ""
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}
