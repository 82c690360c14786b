package configs_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pgrotate/pgrotate/configs"
)

// examplesDir holds the deployment examples (Kubernetes, Compose, Vault
// agent, …). Every pgrotate config in it is named pgrotate*.yaml
// (examples/README.md states the convention), so a test can find them all.
const examplesDir = "../examples"

// exampleEnv is the environment the example configs document: what a
// deployment sets before starting pgrotate.
var exampleEnv = map[string]string{
	"PGROTATE_APP_VERIFIER": appVerifier,
}

// exampleWant is what an example config must say once loaded.
type exampleWant struct {
	listen     string
	mode       configs.PoolMode
	credPath   string
	credFormat string
}

// examplesWant names, per example config, the settings its README and
// manifests rely on. Each has the database "bookstore", owned by
// "bookstore_owner", used by the client "bookstore_app".
var examplesWant = map[string]exampleWant{
	"kubernetes/pgrotate.yaml":          {"127.0.0.1:6432", configs.PoolSession, "/var/run/secrets/bookstore", "dir"},
	"compose/pgrotate.yaml":             {"0.0.0.0:6432", configs.PoolSession, "/var/run/secrets/bookstore", "dir"},
	"vault-agent/pgrotate.yaml":         {"127.0.0.1:6432", configs.PoolSession, "/vault/secrets/bookstore.json", "json"},
	"aws-secrets-manager/pgrotate.yaml": {"127.0.0.1:6432", configs.PoolSession, "/mnt/secrets-store/bookstore.json", "json"},
	"systemd/pgrotate.yaml":             {"127.0.0.1:6432", configs.PoolTransaction, "/etc/pgrotate/credentials/bookstore", "dir"},
}

// TestExamplesDirConfigsLoad loads every pgrotate*.yaml under examples/:
// each must be valid as shipped, given the environment it documents, and
// say what its manifests rely on. An example added later must be listed in
// examplesWant.
func TestExamplesDirConfigsLoad(t *testing.T) {
	for k, v := range exampleEnv {
		t.Setenv(k, v)
	}
	found := exampleConfigs(t)
	for name := range examplesWant {
		if !found[name] {
			t.Errorf("examples/%s is missing", name)
		}
	}
	for name := range found {
		t.Run(name, func(t *testing.T) {
			want, ok := examplesWant[name]
			if !ok {
				t.Fatalf("examples/%s has no entry in examplesWant", name)
			}
			path := filepath.Join(examplesDir, name)
			checkEnvDocumented(t, path)
			c, err := configs.Load(path)
			if err != nil {
				t.Fatalf("Load:\n%v", err)
			}
			checkExample(t, c, want)
		})
	}
}

// exampleConfigs returns the pgrotate configs under examples/, by path
// relative to it.
func exampleConfigs(t *testing.T) map[string]bool {
	t.Helper()
	found := map[string]bool{}
	err := filepath.WalkDir(examplesDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ok, _ := filepath.Match("pgrotate*.yaml", d.Name()); ok {
			rel, err := filepath.Rel(examplesDir, path)
			found[filepath.ToSlash(rel)] = true
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// envRef matches ${VAR} and ${VAR:-default}; group 2 is ":-" when a
// default is given.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-)?`)

// checkEnvDocumented fails for a ${VAR} without a default that exampleEnv
// does not set: a user copying the example would meet "not set" at start.
func checkEnvDocumented(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range envRef.FindAllSubmatch(data, -1) {
		if _, ok := exampleEnv[string(m[1])]; !ok && len(m[2]) == 0 {
			t.Errorf("refers to ${%s}, which exampleEnv does not set", m[1])
		}
	}
}

func checkExample(t *testing.T, c *configs.Config, want exampleWant) {
	t.Helper()
	if c.Listen != want.listen || c.AdminListen != "0.0.0.0:9187" {
		t.Errorf("listen = %q, admin_listen = %q; want %q and 0.0.0.0:9187 (probes and metrics come from outside)",
			c.Listen, c.AdminListen, want.listen)
	}
	db, ok := c.Database("bookstore")
	if !ok {
		t.Fatalf("no database bookstore; have %v", c.Databases)
	}
	if db.OwnerRole != "bookstore_owner" || db.PoolMode != want.mode {
		t.Errorf("owner_role = %q, pool_mode = %q; want bookstore_owner, %q", db.OwnerRole, db.PoolMode, want.mode)
	}
	if db.Credentials.Path != want.credPath || db.Credentials.Format != want.credFormat {
		t.Errorf("credentials = %s (%s), want %s (%s)", db.Credentials.Path, db.Credentials.Format, want.credPath, want.credFormat)
	}
	app, ok := c.Client("bookstore_app")
	if !ok || !app.Allows("bookstore") {
		t.Fatalf("client bookstore_app missing or not allowed on bookstore")
	}
	if s := app.Secrets(); len(s) != 1 || s[0] != appVerifier {
		t.Errorf("bookstore_app has %d verifiers; want exactly the example verifier", len(s))
	}
}

// TestKubernetesConfigMapMatchesFile keeps the ConfigMap applied to the
// cluster and the pgrotate.yaml the tests load the same text.
func TestKubernetesConfigMapMatchesFile(t *testing.T) {
	var cm struct {
		Kind string            `yaml:"kind"`
		Data map[string]string `yaml:"data"`
	}
	data, err := os.ReadFile(filepath.Join(examplesDir, "kubernetes", "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &cm); err != nil {
		t.Fatalf("configmap.yaml: %v", err)
	}
	file, err := os.ReadFile(filepath.Join(examplesDir, "kubernetes", "pgrotate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" {
		t.Errorf("configmap.yaml kind = %q, want ConfigMap", cm.Kind)
	}
	if cm.Data["pgrotate.yaml"] != string(file) {
		t.Errorf("configmap.yaml data.pgrotate.yaml differs from pgrotate.yaml; copy one into the other")
	}
}

// TestExamplesDirManifestsParse checks that every YAML manifest (all
// documents of each file) under examples/ is well formed, and that every
// JSON file there, each an example credential, has a username and password.
func TestExamplesDirManifestsParse(t *testing.T) {
	n := 0
	err := filepath.WalkDir(examplesDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml":
			n++
			checkYAMLStream(t, path)
		case ".json":
			n++
			checkJSON(t, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no YAML or JSON file under examples/")
	}
}

func checkYAMLStream(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return
		}
	}
}

func checkJSON(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if obj["username"] == nil || obj["password"] == nil {
		t.Errorf("%s: a credential needs username and password; has %d keys", path, len(obj))
	}
}

// TestComposeCredentialMatchesInitSQL keeps the Compose example working out
// of the box: the credential directory names the role init.sql creates,
// with its password.
func TestComposeCredentialMatchesInitSQL(t *testing.T) {
	dir := filepath.Join(examplesDir, "compose")
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimRight(string(data), "\n")
	}
	user, password, initSQL := read("credentials/bookstore/username"), read("credentials/bookstore/password"), read("init.sql")
	create := "CREATE ROLE " + user + " LOGIN NOINHERIT PASSWORD '" + password + "';"
	if !strings.Contains(initSQL, create) {
		t.Errorf("init.sql does not create the role in credentials/bookstore (%s) NOINHERIT with its password", user)
	}
	for _, stmt := range []string{
		"GRANT bookstore_owner TO " + user + ";",
		"GRANT CONNECT ON DATABASE bookstore TO " + user + ";",
	} {
		if !strings.Contains(initSQL, stmt) {
			t.Errorf("init.sql lacks %q", stmt)
		}
	}
}
