package integration

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The drivers Java and Python apps use work through transaction pooling:
// named server-side statements, batches and pipelines, portals read in
// pieces, COPY, errors inside a transaction, each client's own TimeZone,
// and the role guard, with more clients than server connections. The
// programs in testdata/drivers say what they check.

// jdbcJar is where Debian's libpostgresql-jdbc-java puts the driver.
const jdbcJar = "/usr/share/java/postgresql.jar"

// driverClients is how many clients each driver program runs at once, on a
// pool of driverPool server connections.
const (
	driverClients = 16
	driverPool    = 4
)

func TestJDBCDriverTransactionMode(t *testing.T) {
	java := lookPathOr(t, "java", "a Java runtime with its compiler (apt-get install default-jdk-headless)")
	if _, err := os.Stat(jdbcJar); err != nil {
		t.Fatalf("the PostgreSQL JDBC driver is not at %s: apt-get install libpostgresql-jdbc-java", jdbcJar)
	}
	env := startProxy(t, setup{poolMode: "transaction", poolSize: driverPool})
	u, err := url.Parse(env.appURL())
	must(t, err)
	jdbcURL := fmt.Sprintf("jdbc:postgresql://%s%s?user=%s&password=%s&sslmode=disable",
		u.Host, u.Path, url.QueryEscape(appUser), url.QueryEscape(appPass))
	runDriver(t, env, java, "-cp", jdbcJar, "testdata/drivers/PgJdbcCheck.java", jdbcURL, ownerRole, fmt.Sprint(driverClients))
}

func TestPsycopgDriverTransactionMode(t *testing.T) {
	python := psycopgPython(t)
	env := startProxy(t, setup{poolMode: "transaction", poolSize: driverPool})
	runDriver(t, env, python, "testdata/drivers/psycopg_check.py", env.appURL(), ownerRole, fmt.Sprint(driverClients))
}

// runDriver runs a driver program and fails the test unless it ends with
// "ok".
func runDriver(t *testing.T, env *proxyEnv, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "ok") {
		t.Fatalf("%s %s: %v\n%s\npgrotate log:\n%s", filepath.Base(name), filepath.Base(args[len(args)-4]), err, out, tail(env.logs.String(), 30))
	}
}

// psycopgPython finds a Python that has psycopg 3: the first python3 on
// PATH, or Debian's, where python3-psycopg installs it.
func psycopgPython(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", "import psycopg").Run() == nil {
			return path
		}
	}
	t.Fatal("no python3 with psycopg 3: apt-get install python3-psycopg")
	return ""
}

// lookPathOr finds a program on PATH, or fails the test saying how to
// install it.
func lookPathOr(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: install %s", name, install)
	}
	return p
}
