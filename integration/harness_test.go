package integration

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/pgrotate/pgrotate/auth"
	"github.com/pgrotate/pgrotate/configs"
	"github.com/pgrotate/pgrotate/internal/daemon"
	"github.com/pgrotate/pgrotate/internal/pgcluster"
)

// The layout every test works with (DESIGN.md §1).
const (
	dbName     = "bookstore"
	ownerRole  = "bookstore_owner"
	execRole1  = "bookstore_user_0001"
	execPass1  = "exec-pass-0001-Zq"
	appUser    = "bookstore_app"
	appPass    = "app-stable-pass-Xy"
	nonMember  = "stranger"
	strangerPw = "stranger-pass-Wv"
)

// cluster is the one PostgreSQL cluster of this package's tests.
var cluster *pgcluster.Cluster

var bookstore = pgcluster.Bookstore{DB: dbName, Owner: ownerRole}

func TestMain(m *testing.M) {
	code := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, err := pgcluster.Start(ctx, pgcluster.Options{})
		if err != nil {
			fmt.Fprintf(os.Stderr, "starting PostgreSQL: %v\n", err)
			return 1
		}
		defer c.Stop()
		cluster = c
		if err := setUpRoles(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "creating roles: %v\n", err)
			return 1
		}
		return m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func setUpRoles(ctx context.Context) error {
	if err := cluster.CreateBookstore(ctx, bookstore); err != nil {
		return err
	}
	if err := cluster.CreateExecutingRole(ctx, bookstore, execRole1, execPass1); err != nil {
		return err
	}
	return cluster.CreateLoginRole(ctx, nonMember, strangerPw)
}

// proxyEnv is one running pgrotate in front of the cluster.
type proxyEnv struct {
	t        *testing.T
	addr     string
	credDir  string
	logs     *syncBuffer
	credKind string // "dir", "json" or "url"
	adminURL string // http://127.0.0.1:port of /metrics, /status …
	daemon   *daemon.Daemon
	cancel   context.CancelFunc
	done     chan error
}

// setup tweaks the generated config before it is loaded.
type setup struct {
	poolMode      string
	poolSize      int
	maxClientConn int
	execRole      string
	execPass      string
	upstreamPort  int
	invalid       bool   // the credential is expected to fail validation
	credKind      string // "dir" (default: a Kubernetes Secret volume), "json" or "url"
	drainTimeout  string // default 5m
	queryWait     string // query_wait_timeout, default 10s
	extraDB       string // more keys of the database, YAML flow style: "min_pool_size: 2, server_lifetime: 1s"
	clientFile    string // the app's verifiers come from this password_file instead
	upstreamHost  string // upstream.host; default 127.0.0.1
	// goroutineRelay turns the event loop off (limits.event_loop: false):
	// plaintext clients are relayed on goroutines.
	goroutineRelay bool
	// md5 gives the app an md5 verifier (auth.allow_md5: true).
	md5 bool
}

// relays are the two relay engines a plaintext client can be served by;
// tests of the relay itself run on both.
var relays = []struct {
	name      string
	goroutine bool
}{{"event loop", false}, {"goroutines", true}}

// startProxy writes a config file and a Kubernetes-style credential
// directory, loads them as `pgrotate serve` does, and runs pgrotate.
func startProxy(t *testing.T, s setup) *proxyEnv {
	t.Helper()
	if s.poolMode == "" {
		s.poolMode = "session"
	}
	if s.poolSize == 0 {
		s.poolSize = 10
	}
	if s.maxClientConn == 0 {
		s.maxClientConn = 200
	}
	if s.execRole == "" {
		s.execRole, s.execPass = execRole1, execPass1
	}
	if s.upstreamPort == 0 {
		s.upstreamPort = cluster.Port
	}
	if s.upstreamHost == "" {
		s.upstreamHost = "127.0.0.1"
	}
	if s.credKind == "" {
		s.credKind = "dir"
	}
	if s.drainTimeout == "" {
		s.drainTimeout = "5m"
	}
	if s.queryWait == "" {
		s.queryWait = "10s"
	}
	dir := t.TempDir()
	env := &proxyEnv{t: t, credDir: filepath.Join(dir, "secret"), credKind: s.credKind, logs: &syncBuffer{}}
	env.writeCredential(t, s.execRole, s.execPass)
	verifier, err := auth.NewSCRAMVerifier(appPass, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if s.md5 {
		verifier = auth.MD5Secret(appUser, appPass)
	}
	cfgText := fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: "off"
log: {level: debug}
limits: {max_client_conn: %d, auth_timeout: 5s, event_loop: %t}
auth: {allow_md5: %t}
upstream: {host: "%s", port: %d, sslmode: disable, connect_timeout: 3s}
databases:
  %s:
    owner_role: %s
    pool_mode: %s
    pool_size: %d
    query_wait_timeout: %s
    drain_timeout: %s
    credentials: {path: %s, poll_interval: 1s}
    %s
clients:
  - {user: %s, %s}
`, s.maxClientConn, !s.goroutineRelay, s.md5, s.upstreamHost, s.upstreamPort, dbName, ownerRole, s.poolMode, s.poolSize, s.queryWait, s.drainTimeout, env.credPath(), flowKeys(s.extraDB), appUser, clientSecret(s.clientFile, verifier))
	path := filepath.Join(dir, "pgrotate.yaml")
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatalf("loading generated config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := daemon.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env.addr, env.daemon, env.adminURL = ln.Addr().String(), d, "http://"+adminLn.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	env.cancel, env.done = cancel, make(chan error, 1)
	go func() { env.done <- d.RunAll(ctx, daemon.Listeners{Clients: ln, Admin: adminLn}) }()
	t.Cleanup(env.stop)
	if s.invalid {
		return env
	}
	readyCtx, readyCancel := context.WithTimeout(ctx, 10*time.Second)
	defer readyCancel()
	if err := d.WaitReady(readyCtx); err != nil && !s.invalid {
		t.Fatalf("pgrotate did not validate its credential: %v\nlog:\n%s", err, env.logs)
	}
	return env
}

func (e *proxyEnv) stop() {
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("pgrotate stopped with: %v", err)
		}
	case <-time.After(30 * time.Second):
		// Closing waits for every leased server connection to come back: a
		// hang here is a lease that was never returned.
		e.t.Fatalf("pgrotate did not shut down within 30s (a leaked server connection?)\nstatus: %+v", e.daemon.Status())
	}
	assertNoSecrets(e.t, e.logs.String())
}

// url is the DATABASE_URL an app would use.
func (e *proxyEnv) url(user, password, db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", user, password, e.addr, db)
}

func (e *proxyEnv) appURL() string { return e.url(appUser, appPass, dbName) }

// connect opens a pgx connection through pgrotate as the app.
func (e *proxyEnv) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, e.appURL())
	if err != nil {
		t.Fatalf("connecting through pgrotate: %v\nlog:\n%s", err, e.logs)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// credPath is the credential source pgrotate is configured with.
func (e *proxyEnv) credPath() string {
	switch e.credKind {
	case "json":
		return filepath.Join(e.credDir, "bookstore.json")
	case "url":
		return filepath.Join(e.credDir, "database-url")
	}
	return e.credDir
}

// writeCredential replaces the credential the way its kind of source is
// updated in production: a Kubernetes ..data swap, or a file renamed into
// place (Vault agent, most secret managers).
func (e *proxyEnv) writeCredential(t *testing.T, user, password string) {
	t.Helper()
	switch e.credKind {
	case "json":
		writeFileAtomic(t, e.credPath(), fmt.Sprintf(`{"username": %q, "password": %q, "engine": "postgres"}`, user, password))
	case "url":
		writeFileAtomic(t, e.credPath(), fmt.Sprintf("postgresql://%s:%s@127.0.0.1:%d/%s\n", user, url.QueryEscape(password), cluster.Port, dbName))
	default:
		writeSecretVolume(t, e.credDir, user, password)
	}
}

// writeFileAtomic writes a temp file and renames it into place.
func writeFileAtomic(t *testing.T, path, content string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o700))
	tmp := path + ".tmp"
	must(t, os.WriteFile(tmp, []byte(content), 0o600))
	must(t, os.Rename(tmp, path))
}

// writeSecretVolume lays a credential out as kubelet updates a Secret
// volume: a new timestamped directory, the ..data symlink swapped to it
// atomically, one symlink per key, and the old directory removed.
func writeSecretVolume(t *testing.T, dir, user, password string) {
	t.Helper()
	ts := filepath.Join(dir, fmt.Sprintf("..%d", time.Now().UnixNano()))
	must(t, os.MkdirAll(ts, 0o750))
	must(t, os.WriteFile(filepath.Join(ts, "username"), []byte(user), 0o600))
	must(t, os.WriteFile(filepath.Join(ts, "password"), []byte(password), 0o600))
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	must(t, os.Symlink(filepath.Base(ts), tmp))
	must(t, os.Rename(tmp, filepath.Join(dir, "..data")))
	if old != "" {
		must(t, os.RemoveAll(filepath.Join(dir, old)))
	}
	for _, k := range []string{"username", "password"} {
		link := filepath.Join(dir, k)
		if _, err := os.Lstat(link); err != nil {
			must(t, os.Symlink(filepath.Join("..data", k), link))
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// assertNoSecrets fails if any password or verifier used by the tests shows
// up in pgrotate's log.
func assertNoSecrets(t *testing.T, log string) {
	t.Helper()
	for _, secret := range []string{execPass1, appPass, strangerPw, "SCRAM-SHA-256$4096:"} {
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, secret) {
				t.Errorf("pgrotate's log contains a secret (%.6s…) in: %.400s…", secret, strings.ReplaceAll(line, secret, "<secret>"))
				break
			}
		}
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitForLog waits until pgrotate's log has a line containing every part.
func (e *proxyEnv) waitForLog(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range strings.Split(e.logs.String(), "\n") {
			if containsAll(line, parts) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q; log:\n%s", parts, e.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// flowKeys turns "a: 1, b: 2" into YAML block lines at the database's indent.
func flowKeys(keys string) string {
	if keys == "" {
		return ""
	}
	return strings.ReplaceAll(keys, ", ", "\n    ")
}

// clientSecret is the YAML of the app's verifier: inline, or a password_file.
func clientSecret(file, verifier string) string {
	if file != "" {
		return "password_file: " + file
	}
	return fmt.Sprintf("password_verifier: %q", verifier)
}
