package proxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/goleak"

	"github.com/pgrotate/pgrotate/auth"
	"github.com/pgrotate/pgrotate/configs"
)

// testCA issues server certificates for "localhost" and 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mustOK(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pgrotate test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	mustOK(t, err)
	cert, err := x509.ParseCertificate(der)
	mustOK(t, err)
	return &testCA{cert: cert, key: key}
}

// issue returns a PEM certificate with the given serial and its PEM key.
func (ca *testCA) issue(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mustOK(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	mustOK(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	mustOK(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writePair writes a certificate and key the way a renewal tool does:
// temp files renamed into place.
func writePair(t *testing.T, dir string, certPEM, keyPEM []byte) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for path, data := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		mustOK(t, os.WriteFile(path+".tmp", data, 0o600))
		mustOK(t, os.Rename(path+".tmp", path))
	}
	return certFile, keyFile
}

// newTestClientTLS loads a pair with serial 1 in mode; logs go to logs.
func newTestClientTLS(t *testing.T, ca *testCA, mode string, logs io.Writer) *ClientTLS {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, 1)
	certFile, keyFile := writePair(t, t.TempDir(), certPEM, keyPEM)
	c, err := NewClientTLS(configs.TLS{Mode: mode, CertFile: certFile, KeyFile: keyFile},
		slog.New(slog.NewTextHandler(logs, nil)))
	mustOK(t, err)
	return c
}

// servedSerial is the serial of the certificate c serves now.
func servedSerial(c *ClientTLS) int64 { return c.pair.Load().leaf.SerialNumber.Int64() }

// tcpPair returns both ends of a loopback TCP connection: real socket
// buffers, so bytes a client pipelines really are there to be read.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	mustOK(t, err)
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	mustOK(t, err)
	server, err = ln.Accept()
	mustOK(t, err)
	t.Cleanup(func() { client.Close(); server.Close() })
	deadline := time.Now().Add(10 * time.Second) // a guard against hanging, not an assertion
	_ = client.SetDeadline(deadline)
	_ = server.SetDeadline(deadline)
	return client, server
}

// Client scripts: what libpq and pgx send before their StartupMessage.
var (
	sslRequest    = func(t *testing.T) []byte { return encode(t, &pgproto3.SSLRequest{}) }
	gssEncRequest = func(t *testing.T) []byte { return encode(t, &pgproto3.GSSEncRequest{}) }
	startupPacket = func(t *testing.T) []byte {
		return encode(t, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
			Parameters: map[string]string{"user": "app", "database": "bookstore"}})
	}
	cancelPacket = func(t *testing.T) []byte {
		return encode(t, &pgproto3.CancelRequest{ProcessID: 7, SecretKey: []byte{0, 0, 0, 9}})
	}
)

// expectAnswer reads the one-byte answer to an encryption request.
func expectAnswer(t *testing.T, c net.Conn, want byte) {
	t.Helper()
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != want {
		t.Fatalf("answer to encryption request = %q, %v; want %q", b[0], err, want)
	}
}

// clientTLS runs the client side of a handshake that verifies pgrotate's
// certificate as sslmode=verify-full does.
func clientTLS(t *testing.T, c net.Conn, ca *testCA, alpn ...string) *tls.Conn {
	t.Helper()
	tc := tls.Client(c, &tls.Config{RootCAs: ca.pool(), ServerName: "localhost", NextProtos: alpn})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("client TLS handshake: %v", err)
	}
	return tc
}

// startupResult is what readStartup returned, and how the session ended up.
type startupResult struct {
	msg     pgproto3.FrontendMessage
	err     error
	tls     bool
	binding []byte
}

// Each way a client can open a connection, in each TLS mode: what pgrotate
// answers, whether the session ends up on TLS, and what it refuses.
func TestNegotiation(t *testing.T) {
	ca := newTestCA(t)
	cases := []struct {
		name   string
		mode   string
		client func(t *testing.T, c net.Conn)
		want   func(t *testing.T, r startupResult, ct *ClientTLS)
	}{
		{
			name: "disable: SSLRequest is declined and the client goes on in plaintext",
			mode: tlsDisable,
			client: func(t *testing.T, c net.Conn) {
				_, _ = c.Write(sslRequest(t))
				expectAnswer(t, c, 'N')
				_, _ = c.Write(startupPacket(t))
			},
			want: wantStartup(false),
		},
		{
			name:   "prefer: a plaintext client is served",
			mode:   tlsPrefer,
			client: func(t *testing.T, c net.Conn) { _, _ = c.Write(startupPacket(t)) },
			want:   wantStartup(false),
		},
		{
			name: "prefer: SSLRequest gets TLS, and SCRAM binds to the served certificate",
			mode: tlsPrefer,
			client: func(t *testing.T, c net.Conn) {
				_, _ = c.Write(sslRequest(t))
				expectAnswer(t, c, 'S')
				_, _ = clientTLS(t, c, ca).Write(startupPacket(t))
			},
			want: wantStartup(true),
		},
		{
			name: "prefer: libpq's gssencmode=prefer order, GSSENCRequest declined then TLS",
			mode: tlsPrefer,
			client: func(t *testing.T, c net.Conn) {
				_, _ = c.Write(gssEncRequest(t))
				expectAnswer(t, c, 'N')
				_, _ = c.Write(sslRequest(t))
				expectAnswer(t, c, 'S')
				_, _ = clientTLS(t, c, ca).Write(startupPacket(t))
			},
			want: wantStartup(true),
		},
		{
			name:   "require: a plaintext StartupMessage is refused with 28000",
			mode:   tlsRequire,
			client: func(t *testing.T, c net.Conn) { _, _ = c.Write(startupPacket(t)) },
			want:   wantWireError(codeInvalidAuthSpec, "pgrotate requires TLS (tls.mode: require)"),
		},
		{
			name:   "require: a plaintext CancelRequest is still accepted",
			mode:   tlsRequire,
			client: func(t *testing.T, c net.Conn) { _, _ = c.Write(cancelPacket(t)) },
			want: func(t *testing.T, r startupResult, _ *ClientTLS) {
				if _, ok := r.msg.(*pgproto3.CancelRequest); !ok || r.err != nil {
					t.Fatalf("readStartup = %T, %v; want the CancelRequest", r.msg, r.err)
				}
			},
		},
		{
			name: "require: PostgreSQL 17 direct TLS with ALPN postgresql",
			mode: tlsRequire,
			client: func(t *testing.T, c net.Conn) {
				tc := clientTLS(t, c, ca, alpnPostgreSQL)
				if p := tc.ConnectionState().NegotiatedProtocol; p != alpnPostgreSQL {
					t.Errorf("negotiated ALPN %q, want %q", p, alpnPostgreSQL)
				}
				_, _ = tc.Write(startupPacket(t))
			},
			want: wantStartup(true),
		},
		{
			name:   "require: direct TLS without ALPN is refused, as PostgreSQL 17 does",
			mode:   tlsRequire,
			client: func(t *testing.T, c net.Conn) { clientTLS(t, c, ca) },
			want:   wantWireError(codeProtocolViolation, "without ALPN"),
		},
		{
			name: "prefer: bytes pipelined after SSLRequest are never read as plaintext startup (CVE-2021-23222)",
			mode: tlsPrefer,
			client: func(t *testing.T, c net.Conn) {
				_, _ = c.Write(append(sslRequest(t), startupPacket(t)...))
				expectAnswer(t, c, 'S')
			},
			want: func(t *testing.T, r startupResult, _ *ClientTLS) {
				if r.msg != nil || !isDisconnect(r.err) || !strings.Contains(r.err.Error(), "TLS handshake") {
					t.Fatalf("readStartup = %T, %v; want the TLS handshake to fail on the pipelined bytes", r.msg, r.err)
				}
			},
		},
		{
			name: "prefer: a second SSLRequest over TLS is a protocol violation",
			mode: tlsPrefer,
			client: func(t *testing.T, c net.Conn) {
				_, _ = c.Write(sslRequest(t))
				expectAnswer(t, c, 'S')
				_, _ = clientTLS(t, c, ca).Write(sslRequest(t))
			},
			want: wantWireError(codeProtocolViolation, "already negotiated"),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ct := newTestClientTLS(t, ca, tc.mode, io.Discard)
			client, server := tcpPair(t)
			s := &session{
				srv:      &Server{tls: ct},
				conn:     server,
				be:       pgproto3.NewBackend(server, server),
				clientRd: newFrameReader(server, defaultBufSize),
				log:      slog.New(slog.DiscardHandler),
			}
			done := make(chan startupResult, 1)
			go func() {
				msg, err := s.readStartup()
				done <- startupResult{msg: msg, err: err, tls: s.isTLS(), binding: s.channelBinding}
			}()
			tc.client(t, client)
			tc.want(t, <-done, ct)
		})
	}
}

// wantStartup expects the StartupMessage, on TLS or not. On TLS, the session
// must carry the tls-server-end-point binding of the served certificate,
// which SCRAM-SHA-256-PLUS checks the client's against.
func wantStartup(onTLS bool) func(*testing.T, startupResult, *ClientTLS) {
	return func(t *testing.T, r startupResult, ct *ClientTLS) {
		t.Helper()
		sm, ok := r.msg.(*pgproto3.StartupMessage)
		if !ok || r.err != nil || sm.Parameters["user"] != "app" {
			t.Fatalf("readStartup = %#v, %v; want the client's StartupMessage", r.msg, r.err)
		}
		if r.tls != onTLS {
			t.Fatalf("session on TLS = %v, want %v", r.tls, onTLS)
		}
		var want []byte
		if onTLS {
			var err error
			want, err = auth.TLSServerEndPoint(ct.pair.Load().leaf)
			mustOK(t, err)
		}
		if !bytes.Equal(r.binding, want) {
			t.Fatalf("channel binding = %x, want %x", r.binding, want)
		}
	}
}

func wantWireError(code, text string) func(*testing.T, startupResult, *ClientTLS) {
	return func(t *testing.T, r startupResult, _ *ClientTLS) {
		t.Helper()
		var we *WireError
		if !errors.As(r.err, &we) || we.Code != code || !strings.Contains(we.Message, text) {
			t.Fatalf("readStartup error = %v; want SQLSTATE %s with %q", r.err, code, text)
		}
	}
}

// A renewed pair is validated, then swapped in; a broken one is logged and
// the last good pair keeps being served.
func TestClientTLSReload(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	cert2, key2 := ca.issue(t, 2)
	cert3, key3 := other.issue(t, 3)
	cases := []struct {
		name       string
		cert, key  []byte
		wantSerial int64
		wantLog    string
	}{
		{"a valid renewal is served", cert2, key2, 2, "client TLS certificate reloaded"},
		{"a half-written certificate keeps the old pair", cert2[:len(cert2)/2], key2, 1, "keeping the previous one"},
		{"a key that does not match keeps the old pair", cert2, key3, 1, "private key does not match public key"},
		{"a certificate from another CA is served too: trust is the client's call", cert3, key3, 3, "serial=3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			ct := newTestClientTLS(t, ca, tlsPrefer, &logs)
			writePair(t, filepath.Dir(ct.certFile), tc.cert, tc.key)
			ct.check(nil)
			if got := servedSerial(ct); got != tc.wantSerial {
				t.Fatalf("served serial = %d, want %d\nlog:\n%s", got, tc.wantSerial, &logs)
			}
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 2 || !strings.Contains(lines[1], tc.wantLog) {
				t.Fatalf("want one reload line with %q after the load line; log:\n%s", tc.wantLog, &logs)
			}
			ct.check(nil) // the poll sees the same content: nothing new to say
			if n := strings.Count(strings.TrimSpace(logs.String()), "\n"); n != 1 {
				t.Fatalf("an unchanged pair was logged again; log:\n%s", &logs)
			}
		})
	}
}

// Start-up fails on an unusable pair instead of on the first client.
func TestNewClientTLSRefusesBrokenPair(t *testing.T) {
	ca := newTestCA(t)
	cert, key := ca.issue(t, 1)
	_, otherKey := ca.issue(t, 2)
	dir := t.TempDir()
	cases := map[string]configs.TLS{
		"missing file": {Mode: tlsRequire, CertFile: filepath.Join(dir, "nope.crt"), KeyFile: filepath.Join(dir, "nope.key")},
		"mismatched key": func() configs.TLS {
			c, k := writePair(t, t.TempDir(), cert, otherKey)
			return configs.TLS{Mode: tlsPrefer, CertFile: c, KeyFile: k}
		}(),
		"key as certificate": func() configs.TLS {
			c, k := writePair(t, t.TempDir(), key, key)
			return configs.TLS{Mode: tlsPrefer, CertFile: c, KeyFile: k}
		}(),
	}
	for name, cfg := range cases {
		if _, err := NewClientTLS(cfg, nil); err == nil || !strings.HasPrefix(err.Error(), "loading client TLS certificate: ") {
			t.Errorf("%s: NewClientTLS error = %v; want a loading error", name, err)
		}
	}
	if c, err := NewClientTLS(configs.TLS{Mode: tlsDisable}, nil); err != nil || c.enabled() {
		t.Errorf("mode disable: NewClientTLS = %v, %v; want TLS off and no files read", c, err)
	}
}

// Run notices a renewal written into the watched directory while it runs,
// and new handshakes get the new certificate.
func TestClientTLSRunPicksUpRenewal(t *testing.T) {
	defer goleak.VerifyNone(t)
	ca := newTestCA(t)
	ct := newTestClientTLS(t, ca, tlsPrefer, io.Discard)
	ct.reload.poll = time.Hour // only fsnotify can deliver the change
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- ct.Run(ctx) }()
	defer func() { cancel(); <-stopped }()

	// A renewal written before Run has armed its watch goes unseen, so the
	// renewal is rewritten (same content) until it is picked up; the pause
	// outlasts the debounce, which each new event restarts.
	cert2, key2 := ca.issue(t, 2)
	for deadline := time.Now().Add(10 * time.Second); servedSerial(ct) != 2; time.Sleep(3 * tlsDebounce / 2) {
		if time.Now().After(deadline) {
			t.Fatal("the renewal was not picked up")
		}
		writePair(t, filepath.Dir(ct.certFile), cert2, key2)
	}

	var served *certPair
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	go func() { _ = tls.Server(server, ct.connConfig(&served)).Handshake() }()
	tc := tls.Client(client, &tls.Config{RootCAs: ca.pool(), ServerName: "localhost"})
	mustOK(t, tc.Handshake())
	if got := tc.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 2 {
		t.Fatalf("a new handshake was served serial %d, want 2", got)
	}
}
