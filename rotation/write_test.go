package rotation

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WriteCredential writes each source layout so that Read gets the new
// credential back, with mode 0600, keeping what the source held besides
// the username and password.
func TestWriteCredentialRoundTrips(t *testing.T) {
	next := Credential{Username: "bookstore_user_0002", Password: "p'w\"d/+"}
	cases := []struct {
		name    string
		prepare func(t *testing.T, dir string) string // returns the source path
		format  Format
		keep    func(t *testing.T, path string) // what must survive the write
	}{
		{"new directory", func(t *testing.T, dir string) string { return filepath.Join(dir, "secret") }, FormatAuto, nil},
		{"plain directory keeps host", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "secret")
			writeFiles(t, p, map[string]string{"username": "u1", "password": "p1", "host": "db.internal"})
			return p
		}, FormatAuto, func(t *testing.T, path string) {
			if c, _ := Read(path, FormatDir); c.Host != "db.internal" {
				t.Errorf("host = %q, want db.internal", c.Host)
			}
		}},
		{"kubernetes volume", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "secret")
			kubeVolume(t, p, map[string]string{"username": "u1", "password": "p1", "port": "5433"})
			return p
		}, FormatAuto, func(t *testing.T, path string) {
			assertKubeLayout(t, path)
			if c, _ := Read(path, FormatDir); c.Port != 5433 {
				t.Errorf("port = %d, want 5433 copied from the previous version", c.Port)
			}
		}},
		{"new json file", func(t *testing.T, dir string) string { return filepath.Join(dir, "db.json") }, FormatAuto, nil},
		{"json keeps unknown keys", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "db.json")
			must(t, os.WriteFile(p, []byte(`{"username":"u1","password":"p1","engine":"postgres","host":"h","port":5432}`), 0o600))
			return p
		}, FormatAuto, func(t *testing.T, path string) {
			var obj map[string]any
			data, _ := os.ReadFile(path)
			must(t, json.Unmarshal(data, &obj))
			if obj["engine"] != "postgres" || obj["host"] != "h" || obj["port"] != float64(5432) {
				t.Errorf("unknown keys not kept: %s", data)
			}
		}},
		{"url keeps host and parameters", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "database-url")
			must(t, os.WriteFile(p, []byte("postgresql://u1:p1@db:6543/shop?sslmode=verify-full\n"), 0o600))
			return p
		}, FormatAuto, func(t *testing.T, path string) {
			c, _ := Read(path, FormatURL)
			data, _ := os.ReadFile(path)
			if c.Host != "db" || c.Port != 6543 || c.DBName != "shop" || !strings.Contains(string(data), "sslmode=verify-full") {
				t.Errorf("url lost its settings: %+v", c)
			}
		}},
		{"new url file", func(t *testing.T, dir string) string { return filepath.Join(dir, "database-url") }, FormatURL, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.prepare(t, t.TempDir())
			cred := next
			cred.Host, cred.Port, cred.DBName = "127.0.0.1", 5432, "bookstore"
			must(t, WriteCredential(path, tc.format, cred))
			got, err := Read(path, tc.format)
			if err != nil {
				t.Fatalf("reading back: %v", err)
			}
			if got.Username != next.Username || got.Password != next.Password {
				t.Fatalf("read back %v / password match %v", got, got.Password == next.Password)
			}
			assertPrivate(t, path)
			if tc.keep != nil {
				tc.keep(t, path)
			}
		})
	}
}

// A credential that Read would refuse is never written.
func TestWriteCredentialRefusesIncomplete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	if err := WriteCredential(path, FormatAuto, Credential{Username: "u"}); err == nil {
		t.Fatal("wrote a credential without a password")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a file was left behind: %v", err)
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o700))
	for k, v := range files {
		must(t, os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600))
	}
}

// kubeVolume lays out a Secret volume as kubelet does.
func kubeVolume(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	writeFiles(t, filepath.Join(dir, "..2020_01_01_00_00_00.1"), files)
	must(t, os.Symlink("..2020_01_01_00_00_00.1", filepath.Join(dir, "..data")))
	for k := range files {
		must(t, os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)))
	}
}

// assertKubeLayout: ..data points at a new version, the old one is gone,
// and the keys are still symlinks through ..data.
func assertKubeLayout(t *testing.T, dir string) {
	t.Helper()
	target, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil || target == "..2020_01_01_00_00_00.1" {
		t.Fatalf("..data = %q, %v; want a new version", target, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "..2020_01_01_00_00_00.1")); !os.IsNotExist(err) {
		t.Errorf("old version not removed: %v", err)
	}
	for _, k := range []string{"username", "password"} {
		if l, err := os.Readlink(filepath.Join(dir, k)); err != nil || l != filepath.Join("..data", k) {
			t.Errorf("%s link = %q, %v", k, l, err)
		}
	}
}

// assertPrivate: every credential file is readable by its owner only.
func assertPrivate(t *testing.T, path string) {
	t.Helper()
	err := filepath.Walk(path, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, info.Mode().Perm())
		}
		return err
	})
	must(t, err)
}

// A URL credential that setup or rotate writes anew names the configured
// upstream where a URL can (one host, "host:port" split, an IPv6 address
// in brackets) and nothing where it cannot (several hosts, a Unix socket
// directory): pgrotate must be able to read back every URL it writes.
func TestNewURLCredentialNamesTheUpstream(t *testing.T) {
	for _, c := range []struct {
		host     string
		port     int
		wantHost string
		wantPort int
	}{
		{"db.internal", 5432, "db.internal", 5432},
		{"127.0.0.1:55442", 5432, "127.0.0.1", 55442},
		{"::1", 5433, "::1", 5433},
		{"127.0.0.1:55442,localhost:55442", 5432, "", 0},
		{"/var/run/postgresql", 5432, "", 0},
	} {
		path := filepath.Join(t.TempDir(), "database-url")
		cred := upstreamForURL(c.host, c.port, "shop")
		cred.Username, cred.Password = "shop_user_0001", "p@ss:w/rd"
		must(t, WriteCredential(path, FormatURL, cred))
		got, err := Read(path, FormatURL)
		if err != nil || got.Host != c.wantHost || got.Port != c.wantPort || got.DBName != "shop" || got.Password != cred.Password {
			data, _ := os.ReadFile(path)
			t.Errorf("upstream host %q: read back %v, %v from %q; want host %q port %d", c.host, got, err, data, c.wantHost, c.wantPort)
		}
	}
}
