package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgrotate/pgrotate/auth"
	"github.com/pgrotate/pgrotate/configs"
	"github.com/pgrotate/pgrotate/internal/daemon"
	"github.com/pgrotate/pgrotate/internal/pgcluster"
)

// Apps verify pgrotate as they would verify PostgreSQL (sslmode=verify-full)
// and bind SCRAM to its certificate (channel_binding=require); with
// tls.mode require, plaintext apps are told why they are refused.
func TestTLSClients(t *testing.T) {
	pki := newTLSPKI(t)
	env := startTLSProxy(t, tlsProxyConfig{pki: pki, mode: "require"})
	base := fmt.Sprintf("postgres://%s:%s@%s/%s?sslrootcert=%s", appUser, appPass, env.addr, dbName, pki.caFile)

	t.Run("pgx verify-full with channel binding", func(t *testing.T) {
		for _, negotiation := range []string{"postgres", "direct"} {
			c := tlsConnect(t, env, base+"&sslmode=verify-full&channel_binding=require&sslnegotiation="+negotiation)
			if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
				t.Fatalf("sslnegotiation=%s: the client connection is %T, not TLS", negotiation, c.PgConn().Conn())
			}
			var who string
			must(t, c.QueryRow(context.Background(), "SELECT current_user").Scan(&who))
			if who != ownerRole {
				t.Fatalf("current_user = %q, want %q", who, ownerRole)
			}
		}
	})

	t.Run("psql verify-full with channel binding", func(t *testing.T) {
		host, port, _ := net.SplitHostPort(env.addr)
		psql := exec.Command(lookPath(t, "psql"), "-X", "-A", "-t", "-c", "SELECT current_user",
			fmt.Sprintf("host=%s port=%s dbname=%s user=%s sslmode=verify-full sslrootcert=%s channel_binding=require",
				host, port, dbName, appUser, pki.caFile))
		psql.Env = append(os.Environ(), "PGPASSWORD="+appPass)
		out, err := psql.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != ownerRole {
			t.Fatalf("psql through pgrotate: %q, %v\nlog:\n%s", out, err, tail(env.logs.String(), 20))
		}
	})

	t.Run("plaintext refused with 28000", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base+"&sslmode=disable")
		if err == nil {
			c.Close(ctx)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28000" || pe.Message != "pgrotate requires TLS (tls.mode: require)" {
			t.Fatalf("plaintext connect with tls.mode require: %v; want 28000", err)
		}
	})
}

// TLS clients and plaintext clients share a busy transaction-mode pool:
// the plaintext ones wait for a connection in the event loop, the TLS ones
// on their goroutines, and connections go to both in turn, so neither
// kind starves and no one times out.
func TestTLSAndPlaintextClientsShareATransactionPool(t *testing.T) {
	pki := newTLSPKI(t)
	env := startTLSProxy(t, tlsProxyConfig{pki: pki, mode: "prefer", poolMode: "transaction", poolSize: 2})
	base := fmt.Sprintf("postgres://%s:%s@%s/%s?sslrootcert=%s", appUser, appPass, env.addr, dbName, pki.caFile)
	const perKind, transactions = 6, 60
	errs := make(chan error, 2*perKind)
	for i := range 2 * perKind {
		sslmode := "disable"
		if i%2 == 0 {
			sslmode = "verify-full"
		}
		c := tlsConnect(t, env, base+"&sslmode="+sslmode)
		go func() {
			for n := range transactions {
				if err := pgx.BeginFunc(ctxT(t), c, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctxT(t), "SELECT pg_sleep(0.001)")
					return err
				}); err != nil {
					errs <- fmt.Errorf("sslmode=%s client, transaction %d: %w", sslmode, n, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 * perKind {
		if err := <-errs; err != nil {
			t.Fatalf("%v\nlog:\n%s", err, tail(env.logs.String(), 20))
		}
	}
}

// The event loop keeps the connections its transactions give back for its
// next ones, out of the pool's queue; a TLS client, relayed on its
// goroutine, still gets one of them when it is idle. Here the pool's only
// connection is idle on the loop after a plaintext client's transaction,
// and a TLS client's query gets it, where it would otherwise wait for
// query_wait_timeout and fail.
func TestTLSClientGetsAConnectionTheEventLoopKeeps(t *testing.T) {
	pki := newTLSPKI(t)
	env := startTLSProxy(t, tlsProxyConfig{pki: pki, mode: "prefer", poolMode: "transaction", poolSize: 1, queryWait: "2s"})
	base := fmt.Sprintf("postgres://%s:%s@%s/%s?sslrootcert=%s", appUser, appPass, env.addr, dbName, pki.caFile)
	plain := tlsConnect(t, env, base+"&sslmode=disable")
	backend := queryStrings(t, plain, "SELECT pg_backend_pid()")[0]
	secure := tlsConnect(t, env, base+"&sslmode=verify-full")
	for turn := range 3 {
		if got := queryStrings(t, secure, "SELECT pg_backend_pid()")[0]; got != backend {
			t.Fatalf("turn %d: the TLS client got backend %s, want the pool's only one, %s", turn, got, backend)
		}
		if got := queryStrings(t, plain, "SELECT pg_backend_pid()")[0]; got != backend {
			t.Fatalf("turn %d: the plaintext client got backend %s, want %s", turn, got, backend)
		}
	}
}

// Plaintext and TLS clients take turns on a session-mode pool's only
// server connection. The event loop relays the plaintext ones and keeps the
// connection out of Go's netpoller between sessions; a TLS client's
// goroutine relay hands it back first. Each turn gets the same backend,
// reset, and every query works: the connection survives both hand-overs.
func TestTLSAndPlaintextClientsTakeTurnsOnASessionConnection(t *testing.T) {
	pki := newTLSPKI(t)
	env := startTLSProxy(t, tlsProxyConfig{pki: pki, mode: "prefer", poolMode: "session", poolSize: 1})
	base := fmt.Sprintf("postgres://%s:%s@%s/%s?sslrootcert=%s", appUser, appPass, env.addr, dbName, pki.caFile)
	backend := ""
	for turn := range 6 {
		sslmode := "disable"
		if turn%2 == 1 {
			sslmode = "verify-full"
		}
		c := tlsConnect(t, env, base+"&sslmode="+sslmode)
		got := queryStrings(t, c, "SELECT pg_backend_pid()::text || ' ' || current_setting('search_path')")[0]
		if backend == "" {
			backend = got
		} else if got != backend {
			t.Fatalf("turn %d (sslmode=%s): backend and search_path %q, want %q: the server connection was replaced or not reset", turn, sslmode, got, backend)
		}
		_, err := c.Exec(ctxT(t), "SET search_path TO pg_catalog")
		must(t, err)
		must(t, c.Close(ctxT(t)))
		waitFor(t, func() bool { return idleConns(env) == 1 }, "the connection back in the pool")
	}
}

// A renewed certificate is picked up without a restart: open sessions go on,
// new clients are served the new certificate; a broken renewal is logged and
// the last good certificate stays.
func TestTLSCertificateReload(t *testing.T) {
	pki := newTLSPKI(t)
	env := startTLSProxy(t, tlsProxyConfig{pki: pki, mode: "prefer"})
	url := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=verify-full&sslrootcert=%s&channel_binding=require",
		appUser, appPass, env.addr, dbName, pki.caFile)
	if got := servedSerial(t, env.addr, pki); got != 1 {
		t.Fatalf("served serial = %d, want 1", got)
	}
	open := tlsConnect(t, env, url)

	pki.writePair(t, 2)
	env.waitForLog(t, "client TLS certificate reloaded", "serial=2")
	waitFor(t, func() bool { return servedSerial(t, env.addr, pki) == 2 }, "serial 2 to be served")
	var one int
	must(t, open.QueryRow(context.Background(), "SELECT 1").Scan(&one))
	tlsConnect(t, env, url) // verify-full and channel binding against the new certificate

	writeFileAtomic(t, pki.certFile, "-----BEGIN CERTIFICATE-----\nMIIB") // cut short
	env.waitForLog(t, "client TLS certificate not reloaded; keeping the previous one")
	if got := servedSerial(t, env.addr, pki); got != 2 {
		t.Fatalf("after a broken renewal, served serial = %d, want 2", got)
	}
	tlsConnect(t, env, url)
}

// pgrotate connects to PostgreSQL with sslmode=verify-full against the
// server's own CA, and refuses a server its sslrootcert does not vouch for:
// clients get 08006, the reason is in pgrotate's log.
func TestTLSUpstreamVerifyFull(t *testing.T) {
	serverPKI := newTLSPKI(t)
	c := startTLSCluster(t, serverPKI)

	t.Run("trusted CA", func(t *testing.T) {
		env := startTLSProxy(t, tlsProxyConfig{pki: newTLSPKI(t), mode: "disable", upstream: c, upstreamCA: serverPKI.caFile})
		conn := tlsConnect(t, env, env.appURL())
		var one int
		must(t, conn.QueryRow(context.Background(), "SELECT 1").Scan(&one))
		// The session acts as the owner role, which may not see its own
		// executing role's pg_stat_ssl row: ask as the superuser.
		rows, err := c.QueryStrings(context.Background(), "postgres",
			"SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = $1", execRole1)
		must(t, err)
		if len(rows) == 0 || slices.ContainsFunc(rows, func(r []string) bool { return r[0] != "t" }) {
			t.Fatalf("ssl of pgrotate's server connections = %v, want all true", rows)
		}
	})

	t.Run("another CA", func(t *testing.T) {
		other := newTLSPKI(t)
		env := startTLSProxy(t, tlsProxyConfig{pki: other, mode: "disable", upstream: c, upstreamCA: other.caFile, invalid: true})
		env.waitForLog(t, "certificate signed by unknown authority")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, env.appURL())
		if err == nil {
			conn.Close(ctx)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "08006" {
			t.Fatalf("connect through pgrotate to an untrusted server: %v; want 08006", err)
		}

		// The right CA lands in the sslrootcert file (a renewed CA bundle):
		// pgrotate uses it from the next connection on, no restart.
		ca, err := os.ReadFile(serverPKI.caFile)
		must(t, err)
		writeFileAtomic(t, other.caFile, string(ca))
		waitFor(t, func() bool {
			c, err := connectAs(env, appUser, appPass)
			closeIf(c)
			return err == nil
		}, "clients to connect once sslrootcert holds the server's CA")
	})
}

// tlsPKI is a CA and the certificate files it signs, in one directory.
type tlsPKI struct {
	dir, caFile, certFile, keyFile string
	ca                             *x509.Certificate
	caKey                          *ecdsa.PrivateKey
}

func newTLSPKI(t *testing.T) *tlsPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgrotate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	ca, err := x509.ParseCertificate(der)
	must(t, err)
	dir := t.TempDir()
	p := &tlsPKI{dir: dir, caFile: filepath.Join(dir, "ca.crt"), certFile: filepath.Join(dir, "server.crt"),
		keyFile: filepath.Join(dir, "server.key"), ca: ca, caKey: key}
	must(t, os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	p.writePair(t, 1)
	return p
}

// writePair issues a certificate for 127.0.0.1 and localhost with the given
// serial and renames it and its key into place, key first.
func (p *tlsPKI) writePair(t *testing.T, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	must(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	writeFileAtomic(t, p.keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	writeFileAtomic(t, p.certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

// tlsProxyConfig is what the TLS tests vary in pgrotate's config.
type tlsProxyConfig struct {
	pki        *tlsPKI
	mode       string             // tls.mode
	upstream   *pgcluster.Cluster // nil: the package's cluster, without TLS
	upstreamCA string             // sslrootcert for upstream sslmode=verify-full
	invalid    bool               // the upstream is expected to be refused
	poolMode   string             // "": session
	poolSize   int                // 0: the default
	queryWait  string             // query_wait_timeout; "": the default
}

// startTLSProxy runs pgrotate with a tls section, as `pgrotate serve` would.
// startProxy's template has no tls section, hence this smaller twin.
func startTLSProxy(t *testing.T, tc tlsProxyConfig) *proxyEnv {
	t.Helper()
	upstream := fmt.Sprintf("{host: 127.0.0.1, port: %d, sslmode: disable, connect_timeout: 3s}", cluster.Port)
	if tc.upstream != nil {
		upstream = fmt.Sprintf("{host: 127.0.0.1, port: %d, sslmode: verify-full, sslrootcert: %s, connect_timeout: 3s}",
			tc.upstream.Port, tc.upstreamCA)
	}
	dir := t.TempDir()
	env := &proxyEnv{t: t, credDir: filepath.Join(dir, "secret"), credKind: "dir", logs: &syncBuffer{}}
	env.writeCredential(t, execRole1, execPass1)
	verifier, err := auth.NewSCRAMVerifier(appPass, 4096)
	must(t, err)
	tlsSection := fmt.Sprintf("{mode: %s}", tc.mode)
	if tc.mode != "disable" {
		tlsSection = fmt.Sprintf("{mode: %s, cert_file: %s, key_file: %s}", tc.mode, tc.pki.certFile, tc.pki.keyFile)
	}
	pool := ""
	if tc.poolMode != "" {
		pool = fmt.Sprintf("\n    pool_mode: %s\n    pool_size: %d", tc.poolMode, tc.poolSize)
	}
	if tc.queryWait != "" {
		pool += "\n    query_wait_timeout: " + tc.queryWait
	}
	cfgText := fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: "off"
limits: {auth_timeout: 5s}
upstream: %s
tls: %s
databases:
  %s:
    owner_role: %s%s
    credentials: {path: %s, poll_interval: 1s}
clients:
  - {user: %s, password_verifier: "%s"}
`, upstream, tlsSection, dbName, ownerRole, pool, env.credPath(), appUser, verifier)
	path := filepath.Join(dir, "pgrotate.yaml")
	must(t, os.WriteFile(path, []byte(cfgText), 0o600))
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatalf("loading generated config: %v", err)
	}
	d, err := daemon.New(cfg, slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	must(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	env.addr, env.daemon, env.cancel, env.done = ln.Addr().String(), d, cancel, make(chan error, 1)
	go func() { env.done <- d.Run(ctx, ln) }()
	t.Cleanup(env.stop)
	if !tc.invalid {
		readyCtx, readyCancel := context.WithTimeout(ctx, 10*time.Second)
		defer readyCancel()
		if err := d.WaitReady(readyCtx); err != nil {
			t.Fatalf("pgrotate did not validate its credential: %v\nlog:\n%s", err, env.logs)
		}
	}
	return env
}

// tlsConnect opens a pgx connection with url and closes it after the test.
func tlsConnect(t *testing.T, env *proxyEnv, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting through pgrotate: %v\nlog:\n%s", err, tail(env.logs.String(), 20))
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// servedSerial asks for TLS as libpq does (SSLRequest, then the handshake)
// and returns the serial of the certificate pgrotate serves, verified
// against the PKI's CA.
func servedSerial(t *testing.T, addr string, p *tlsPKI) int64 {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	must(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	_, err = c.Write(req)
	must(t, err)
	answer := make([]byte, 1)
	if _, err := io.ReadFull(c, answer); err != nil || answer[0] != 'S' {
		t.Fatalf("answer to SSLRequest = %q, %v; want 'S'", answer, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.ca)
	tc := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	must(t, tc.Handshake())
	return tc.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// startTLSCluster starts a second throwaway cluster with ssl=on serving p's
// certificate, with the bookstore roles. The server runs as the postgres OS
// user when we are root, and PostgreSQL wants its key owned by that user
// with mode 0600, so the files go to a directory handed over to it.
func startTLSCluster(t *testing.T, p *tlsPKI) *pgcluster.Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgrotate-server-tls-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		must(t, err)
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	files := map[string]string{"server.crt": p.certFile, "server.key": p.keyFile}
	for name, src := range files {
		data, err := os.ReadFile(src)
		must(t, err)
		dst := filepath.Join(dir, name)
		must(t, os.WriteFile(dst, data, 0o600))
		if uid >= 0 {
			must(t, os.Chown(dst, uid, gid))
		}
	}
	if uid >= 0 {
		must(t, os.Chown(dir, uid, gid))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Settings: map[string]string{
		"ssl":           "on",
		"ssl_cert_file": filepath.Join(dir, "server.crt"),
		"ssl_key_file":  filepath.Join(dir, "server.key"),
	}})
	must(t, err)
	t.Cleanup(func() { _ = c.Stop() })
	must(t, c.CreateBookstore(ctx, bookstore))
	must(t, c.CreateExecutingRole(ctx, bookstore, execRole1, execPass1))
	return c
}

// TLS clients (relayed on goroutines) and plaintext clients (on the event
// loop) share a busy transaction-mode pool: neither kind starves. A
// connection a TLS client gives back used to go to the next TLS client
// waiting, every time, so a few plaintext clients among many TLS ones got
// no turn and failed with 53300.
func TestTLSAndPlaintextClientsShareABusyPool(t *testing.T) {
	pki := newTLSPKI(t)
	env := startTLSProxy(t, tlsProxyConfig{pki: pki, mode: "prefer", poolMode: "transaction", poolSize: 2, queryWait: "5s"})
	base := fmt.Sprintf("postgres://%s:%s@%s/%s?sslrootcert=%s", appUser, appPass, env.addr, dbName, pki.caFile)
	const tlsClients, plainClients = 8, 2
	var wg sync.WaitGroup
	counts := make([]int, tlsClients+plainClients)
	errs := make([]error, len(counts))
	stop := time.Now().Add(3 * time.Second)
	for i := range counts {
		sslmode := "verify-full"
		if i >= tlsClients {
			sslmode = "disable"
		}
		c := tlsConnect(t, env, base+"&sslmode="+sslmode)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if _, err := c.Exec(context.Background(), "SELECT pg_sleep(0.005)"); err != nil {
					errs[i] = err
					return
				}
				counts[i]++
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
	tlsTotal := 0
	for _, n := range counts[:tlsClients] {
		tlsTotal += n
	}
	for i, n := range counts[tlsClients:] {
		// A fair share is about the TLS clients' average; starving, it was
		// one transaction against hundreds.
		if 4*n < tlsTotal/tlsClients {
			t.Errorf("plaintext client %d ran %d transactions; the TLS clients ran %d each on average", i, n, tlsTotal/tlsClients)
		}
	}
}
