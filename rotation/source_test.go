package rotation

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secret is the password in every layout, so each error can be checked for
// leaking it.
const secret = "s3cr3t-PA55"

// TestRead documents every layout pgrotate reads and the broken states it
// refuses. Errors name the path and a reason, never the content.
func TestRead(t *testing.T) {
	user2 := Credential{Username: "bookstore_user_0002", Password: secret}
	tests := []struct {
		name       string
		format     Format
		setup      func(t *testing.T, dir string) string // returns the source path
		want       Credential
		wantReason string // non-empty: Read must fail with this reason
	}{
		{
			name: "kubernetes secret volume", format: FormatAuto,
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "bookstore")
				writeKubeSecret(t, p, map[string]string{"username": "bookstore_user_0002\n", "password": secret + "\n"})
				return p
			},
			want: user2,
		},
		{
			name: "kubernetes secret volume with overrides", format: FormatDir,
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "bookstore")
				writeKubeSecret(t, p, map[string]string{
					"username": "bookstore_user_0002", "password": secret,
					"host": "db.internal\n", "port": "6543\n", "database": "bookstore\n",
				})
				return p
			},
			want: Credential{Username: "bookstore_user_0002", Password: secret, Host: "db.internal", Port: 6543, DBName: "bookstore"},
		},
		{
			name: "plain directory with CRLF line ends", format: FormatAuto,
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "creds", "username"), "bookstore_user_0002\r\n")
				writeFile(t, filepath.Join(dir, "creds", "password"), secret+"\r\n")
				writeFile(t, filepath.Join(dir, "creds", "dbname"), "bookstore")
				return filepath.Join(dir, "creds")
			},
			want: Credential{Username: "bookstore_user_0002", Password: secret, DBName: "bookstore"},
		},
		{
			name: "AWS Secrets Manager RDS secret", format: FormatAuto,
			setup: fileWith(`{"username":"bookstore_user_0002","password":"` + secret + `","engine":"postgres",
				"host":"bookstore.cluster-abc.eu-west-1.rds.amazonaws.com","port":5432,"dbname":"bookstore","dbClusterIdentifier":"bookstore"}`),
			want: Credential{Username: "bookstore_user_0002", Password: secret,
				Host: "bookstore.cluster-abc.eu-west-1.rds.amazonaws.com", Port: 5432, DBName: "bookstore"},
		},
		{
			name: "Vault agent template output", format: FormatJSON,
			setup: fileWith("\n  {\"user\": \"bookstore_user_0002\", \"password\": \"" + secret + "\", \"port\": \"5433\", \"database\": \"bookstore\"}\n"),
			want:  Credential{Username: "bookstore_user_0002", Password: secret, Port: 5433, DBName: "bookstore"},
		},
		{
			name: "Vault database engine response", format: FormatAuto,
			setup: fileWith(`{"lease_id":"database/creds/bookstore/abc","lease_duration":3600,"renewable":true,
				"data":{"username":"bookstore_user_0002","password":"` + secret + `"}}`),
			want: user2,
		},
		{
			name: "Vault KV v2 response", format: FormatAuto,
			setup: fileWith(`{"data":{"data":{"username":"bookstore_user_0002","password":"` + secret + `"},"metadata":{"version":3}}}`),
			want:  user2,
		},
		{
			name: "URL with percent-encoded password", format: FormatAuto,
			setup: fileWith("postgresql://bookstore_user_0002:p%40ss%2Fw%3Ard%25@db.internal:6543/bookstore?sslmode=verify-full\n"),
			want:  Credential{Username: "bookstore_user_0002", Password: "p@ss/w:rd%", Host: "db.internal", Port: 6543, DBName: "bookstore"},
		},
		{
			name: "URL with IPv6 host and query parameters", format: FormatURL,
			setup: fileWith("postgres://[::1]:5432?user=bookstore_user_0002&password=" + secret + "&dbname=bookstore"),
			want:  Credential{Username: "bookstore_user_0002", Password: secret, Host: "::1", Port: 5432, DBName: "bookstore"},
		},
		{name: "empty file", setup: fileWith(""), wantReason: "is empty"},
		{name: "whitespace-only JSON file", format: FormatJSON, setup: fileWith(" \n"), wantReason: "is empty"},
		{name: "missing password", setup: fileWith(`{"username":"bookstore_user_0002"}`), wantReason: "missing password"},
		{name: "empty password", setup: fileWith(`{"username":"bookstore_user_0002","password":""}`), wantReason: "missing password"},
		{name: "missing username", setup: fileWith(`{"password":"` + secret + `"}`), wantReason: "missing username"},
		{name: "garbage JSON", setup: fileWith(`{"username":"u", "password": ` + secret + `}`), wantReason: "invalid JSON at byte offset"},
		{name: "truncated JSON", setup: fileWith(`{"username":"u","password":"` + secret), wantReason: "truncated JSON"},
		{name: "trailing comma", setup: fileWith(`{"username":"u","password":"` + secret + `",}`), wantReason: "invalid JSON at byte offset"},
		{name: "JSON array", setup: fileWith(`["u","` + secret + `"]`), format: FormatJSON, wantReason: "not an object"},
		{name: "password not a string", setup: fileWith(`{"username":"u","password":12345678}`), wantReason: `field "password" is not a string`},
		{name: "port out of range", setup: fileWith(`{"username":"u","password":"` + secret + `","port":70000}`), wantReason: "port is not a number"},
		{name: "URL with bad escape", setup: fileWith("postgres://u:" + secret + "%zz@h/db"), wantReason: "not a valid postgres:// URL"},
		{name: "URL without password", setup: fileWith("postgres://bookstore_user_0002@h/db"), wantReason: "missing password"},
		{name: "URL with two hosts", setup: fileWith("postgres://u:" + secret + "@h1:5432,h2:5432/db"), wantReason: "multiple hosts"},
		{name: "neither JSON nor URL", setup: fileWith(secret), wantReason: "not a JSON object or a postgres:// URL"},
		{
			name: "directory without password file",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "creds", "username"), "u")
				return filepath.Join(dir, "creds")
			},
			wantReason: "missing file password",
		},
		{
			name: "directory read as JSON", format: FormatJSON,
			setup:      func(t *testing.T, dir string) string { return dir },
			wantReason: "is a directory",
		},
		{
			name:       "missing path",
			setup:      func(t *testing.T, dir string) string { return filepath.Join(dir, "nope") },
			wantReason: "does not exist",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.setup(t, t.TempDir())
			got, err := Read(path, tt.format)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				if !got.Equal(tt.want) {
					t.Fatalf("Read = %#v %d, want %#v %d", got, len(got.Password), tt.want, len(tt.want.Password))
				}
				return
			}
			var se *SourceError
			if !errors.As(err, &se) {
				t.Fatalf("Read error = %v, want a *SourceError", err)
			}
			if se.Path != path || !strings.Contains(se.Reason, tt.wantReason) {
				t.Errorf("Read error = %q, want path %s and reason %q", err, path, tt.wantReason)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Read error leaks the password: %q", err)
			}
		})
	}
}

// TestReadMissingPathIsNotExist lets callers tell "not mounted yet" apart.
func TestReadMissingPathIsNotExist(t *testing.T) {
	_, err := Read(filepath.Join(t.TempDir(), "nope"), FormatAuto)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read error = %v, want one matching fs.ErrNotExist", err)
	}
}

// TestCredentialNeverPrintsPassword covers every way a credential can reach
// a log line.
func TestCredentialNeverPrintsPassword(t *testing.T) {
	c := Credential{Username: "bookstore_user_0002", Password: secret, Host: "db", Port: 5432, DBName: "bookstore"}
	if got, want := c.String(), "bookstore_user_0002@db:5432/bookstore"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got, want := (Credential{Username: "bookstore_user_0002", Password: secret}).String(), "bookstore_user_0002"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	for _, s := range []string{c.String(), c.GoString(), c.LogValue().String(), sprintf("%v %+v %#v %s", c, c, c, c)} {
		if strings.Contains(s, secret) {
			t.Errorf("formatted credential leaks the password: %q", s)
		}
	}
}

// TestCredentialHash shows that a password-only change is a change, and
// that the hash does not confuse field boundaries.
func TestCredentialHash(t *testing.T) {
	a := Credential{Username: "u", Password: "p1"}
	if a.hash() != (Credential{Username: "u", Password: "p1"}).hash() {
		t.Error("equal credentials hash differently")
	}
	if a.hash() == (Credential{Username: "u", Password: "p2"}).hash() {
		t.Error("a password-only change hashes the same")
	}
	if (Credential{Username: "ab", Password: "c"}).hash() == (Credential{Username: "a", Password: "bc"}).hash() {
		t.Error("field boundaries are ambiguous")
	}
}

func fileWith(content string) func(t *testing.T, dir string) string {
	return func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "credential")
		must(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
}
