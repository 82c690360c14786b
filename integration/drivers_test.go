package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The drivers Java, Python and Ruby apps use work through transaction
// pooling: named server-side statements, batches and pipelines, portals
// read in pieces, COPY, errors inside a transaction, each client's own
// TimeZone, and the role guard, with more clients than server connections;
// and through rotations, in both pool modes. The programs in
// testdata/drivers say what they check.

// jdbcJar is where Debian's libpostgresql-jdbc-java puts the driver.
const jdbcJar = "/usr/share/java/postgresql.jar"

// driverClients is how many clients each driver program runs at once, on a
// pool of driverPool server connections.
const (
	driverClients = 16
	driverPool    = 4
)

func TestJDBCDriverTransactionMode(t *testing.T) {
	java := javaForJDBC(t)
	env := startProxy(t, setup{poolMode: "transaction", poolSize: driverPool})
	runDriver(t, env, java, "-cp", jdbcJar, "testdata/drivers/PgJdbcCheck.java", jdbcURL(t, env), ownerRole, fmt.Sprint(driverClients))
}

// javaForJDBC finds the java launcher, and checks that the JDBC driver is
// installed.
func javaForJDBC(t *testing.T) string {
	t.Helper()
	java := lookPathOr(t, "java", "a JDK (apt-get install default-jdk-headless)")
	if _, err := os.Stat(jdbcJar); err != nil {
		t.Fatalf("the PostgreSQL JDBC driver is not at %s: apt-get install libpostgresql-jdbc-java", jdbcJar)
	}
	return java
}

// jdbcURL is the app's URL through pgrotate, as JDBC spells it.
func jdbcURL(t *testing.T, env *proxyEnv) string {
	t.Helper()
	u, err := url.Parse(env.appURL())
	must(t, err)
	return fmt.Sprintf("jdbc:postgresql://%s%s?user=%s&password=%s&sslmode=disable",
		u.Host, u.Path, url.QueryEscape(appUser), url.QueryEscape(appPass))
}

func TestPsycopgDriverTransactionMode(t *testing.T) {
	python := psycopgPython(t)
	env := startProxy(t, setup{poolMode: "transaction", poolSize: driverPool})
	runDriver(t, env, python, "testdata/drivers/psycopg_check.py", env.appURL(), ownerRole, fmt.Sprint(driverClients))
}

func TestActiveRecordTransactionMode(t *testing.T) {
	ruby := lookPathOr(t, "ruby", "Ruby with ActiveRecord and the pg gem (apt-get install ruby-activerecord ruby-pg)")
	if exec.Command(ruby, "-e", `require "active_record"; require "pg"`).Run() != nil {
		t.Fatal("ActiveRecord or the pg gem is missing: apt-get install ruby-activerecord ruby-pg")
	}
	env := startProxy(t, setup{poolMode: "transaction", poolSize: driverPool})
	_, err := env.connect(t).Exec(ctxT(t), "CREATE TABLE drv_books (id bigserial PRIMARY KEY, title text NOT NULL, copies int, "+
		"created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL)")
	must(t, err)
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS drv_books") })
	host, port, err := net.SplitHostPort(env.addr)
	must(t, err)
	runDriver(t, env, ruby, "testdata/drivers/activerecord_check.rb", host, port, dbName, appUser, appPass, ownerRole, "12")
}

// The product's promise with the drivers apps use: their connections stay
// open through rotations of the executing role, with named statements
// prepared on the server, and not one transaction fails, in either pool
// mode. In session mode each client's session moves to a connection of the
// new role with its statements carried over.
func TestDriversThroughRotations(t *testing.T) {
	drivers := []struct {
		name string
		cmd  func(t *testing.T, env *proxyEnv) *exec.Cmd
	}{
		{"jdbc", func(t *testing.T, env *proxyEnv) *exec.Cmd {
			return exec.Command(javaForJDBC(t), "-cp", jdbcJar, "testdata/drivers/PgJdbcLoad.java", jdbcURL(t, env), ownerRole, "6")
		}},
		{"psycopg", func(t *testing.T, env *proxyEnv) *exec.Cmd {
			return exec.Command(psycopgPython(t), "testdata/drivers/psycopg_load.py", env.appURL(), ownerRole, "6")
		}},
	}
	for _, d := range drivers {
		for _, mode := range []string{"session", "transaction"} {
			t.Run(d.name+" "+mode, func(t *testing.T) {
				env := startProxy(t, setup{poolMode: mode, poolSize: 12})
				_, err := env.connect(t).Exec(ctxT(t), "CREATE TABLE IF NOT EXISTS drv_counter (client int PRIMARY KEY, n bigint NOT NULL)")
				must(t, err)
				t.Cleanup(func() { _ = cluster.Exec(context.Background(), dbName, "DROP TABLE IF EXISTS drv_counter") })
				app := startDriverLoad(t, env, d.cmd(t, env))
				for i := 1; i <= 3; i++ {
					role, pw := nextRole(t, i)
					swapped := time.Now()
					env.writeCredential(t, role, pw)
					promoted, drained := env.waitRotated(t, role, swapped)
					t.Logf("rotation %d: promoted after %v, drained after %v", i, promoted.Round(time.Millisecond), drained.Round(time.Millisecond))
				}
				t.Logf("%s: %s", d.name, app.stop(t))
			})
		}
	}
}

// driverLoad is a running load program (testdata/drivers/*_load.*).
type driverLoad struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // its output, closed when it exits
	env   *proxyEnv
}

// startDriverLoad starts cmd and waits until every client of it has
// committed a transaction.
func startDriverLoad(t *testing.T, env *proxyEnv, cmd *exec.Cmd) *driverLoad {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	cmd.Stderr = cmd.Stdout
	must(t, cmd.Start())
	d := &driverLoad{cmd: cmd, stdin: stdin, lines: make(chan string, 100), env: env}
	go func() {
		defer close(d.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var out []string
	timeout := time.After(time.Minute)
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				t.Fatalf("%s ended before it was ready:\n%s\npgrotate log:\n%s", cmd.Args[0], strings.Join(out, "\n"), tail(env.logs.String(), 30))
			}
			if line == "ready" {
				return d
			}
			out = append(out, line)
		case <-timeout:
			t.Fatalf("%s not ready after a minute:\n%s", cmd.Args[0], strings.Join(out, "\n"))
		}
	}
}

// stop ends the load and returns its last line, "ok <transactions>"; the
// test fails if any transaction failed.
func (d *driverLoad) stop(t *testing.T) string {
	t.Helper()
	must(t, d.stdin.Close())
	var out []string
	for line := range d.lines {
		out = append(out, line)
	}
	err := d.cmd.Wait()
	last := ""
	if len(out) > 0 {
		last = out[len(out)-1]
	}
	if err != nil || !strings.HasPrefix(last, "ok ") || last == "ok 0" {
		t.Fatalf("load through the rotations: %v\n%s\npgrotate log:\n%s", err, strings.Join(out, "\n"), tail(d.env.logs.String(), 30))
	}
	return last
}

// runDriver runs a driver program and fails the test unless it ends with
// "ok".
func runDriver(t *testing.T, env *proxyEnv, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "ok") {
		t.Fatalf("%s: %v\n%s\npgrotate log:\n%s", driverProgram(args), err, out, tail(env.logs.String(), 30))
	}
}

// driverProgram is the program among a driver command's arguments.
func driverProgram(args []string) string {
	for _, a := range args {
		if strings.HasPrefix(a, "testdata/drivers/") {
			return filepath.Base(a)
		}
	}
	return strings.Join(args, " ")
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
