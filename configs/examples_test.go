package configs_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgrotate/pgrotate/configs"
)

// TestExamplesLoad loads every file in examples/, so an example added
// later is checked too: it must be valid as shipped, given the
// environment variables the examples document.
func TestExamplesLoad(t *testing.T) {
	t.Setenv("PGROTATE_APP_VERIFIER", appVerifier)
	t.Setenv("PGHOST", "") // kubernetes.yaml falls back to its default
	files, err := filepath.Glob(filepath.Join("examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]func(*testing.T, *configs.Config){
		"minimal.yaml":     checkMinimal,
		"transaction.yaml": checkTransaction,
		"kubernetes.yaml":  checkKubernetes,
	}
	for name := range checks {
		if !hasBase(files, name) {
			t.Errorf("examples/%s is missing", name)
		}
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := configs.Load(f)
			if err != nil {
				t.Fatalf("Load:\n%v", err)
			}
			if c.Path != f {
				t.Errorf("Path = %q, want %q", c.Path, f)
			}
			if check := checks[filepath.Base(f)]; check != nil {
				check(t, c)
			}
		})
	}
}

func hasBase(files []string, name string) bool {
	for _, f := range files {
		if filepath.Base(f) == name {
			return true
		}
	}
	return false
}

func checkMinimal(t *testing.T, c *configs.Config) {
	db, ok := c.Database("bookstore")
	if !ok || db.OwnerRole != "bookstore_owner" || db.PoolMode != configs.PoolSession || db.DBName != "bookstore" {
		t.Errorf("bookstore = %+v", db)
	}
	app, ok := c.Client("bookstore_app")
	if !ok || len(app.Secrets()) != 1 || !app.Allows("bookstore") {
		t.Errorf("bookstore_app = %+v", app)
	}
	if len(c.Databases) != 1 || len(c.Clients) != 1 {
		t.Errorf("%d databases and %d clients, want 1 and 1", len(c.Databases), len(c.Clients))
	}
}

func checkTransaction(t *testing.T, c *configs.Config) {
	db, ok := c.Database("bookstore")
	if !ok || db.PoolMode != configs.PoolTransaction || db.DBName != "bookstore_prod" || db.Credentials.Format != "url" {
		t.Errorf("bookstore = %+v", db)
	}
	if !c.Auth.AllowMD5 || c.Upstream.SSLMode != "verify-full" {
		t.Errorf("AllowMD5 = %v, SSLMode = %q; want true, verify-full", c.Auth.AllowMD5, c.Upstream.SSLMode)
	}
	web, _ := c.Client("bookstore_web")
	legacy, _ := c.Client("legacy_app")
	if web == nil || len(web.Secrets()) != 2 || !strings.HasPrefix(web.Secrets()[1], "SCRAM-SHA-256$") {
		t.Errorf("bookstore_web = %+v; want two SCRAM verifiers", web)
	}
	if legacy == nil || !strings.HasPrefix(legacy.PasswordVerifier, "md5") {
		t.Errorf("legacy_app = %+v; want an md5 verifier", legacy)
	}
}

func checkKubernetes(t *testing.T, c *configs.Config) {
	if c.AdminListen != "0.0.0.0:9187" || c.Log.Format != "json" {
		t.Errorf("AdminListen = %q, Log.Format = %q", c.AdminListen, c.Log.Format)
	}
	if c.Upstream.Host != "postgres.databases.svc.cluster.local" {
		t.Errorf("Upstream.Host = %q", c.Upstream.Host)
	}
	db, ok := c.Database("bookstore")
	if !ok || db.Credentials.Path != "/var/run/secrets/bookstore" || db.Credentials.Format != "dir" {
		t.Errorf("bookstore = %+v", db)
	}
	app, ok := c.Client("bookstore_app")
	if !ok || app.PasswordVerifier != appVerifier {
		t.Errorf("bookstore_app verifier does not come from PGROTATE_APP_VERIFIER")
	}
}
