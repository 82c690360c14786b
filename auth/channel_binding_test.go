package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestPgxChannelBinding logs in over TLS with pgx, which upgrades to
// SCRAM-SHA-256-PLUS when it is offered. channel_binding=require makes pgx
// refuse anything else, so a successful login proves the binding was used
// and matched.
func TestPgxChannelBinding(t *testing.T) {
	tlsConfig, cert := selfSignedTLS(t)
	binding, err := TLSServerEndPoint(cert)
	if err != nil {
		t.Fatal(err)
	}
	verifier, _ := NewSCRAMVerifier("pw", 0)
	secrets := map[string][]Secret{"app": {mustParse(t, verifier)}}
	otherBinding := bytes.Repeat([]byte{1}, len(binding))
	tests := []struct {
		name           string
		binding        []byte
		password       string
		channelBinding string
		wantReason     string
	}{
		{"binding required and matched", binding, "pw", "require", ""},
		{"binding preferred", binding, "pw", "prefer", ""},
		{"client disables binding", binding, "pw", "disable", ""},
		{"binding matched, wrong password", binding, "nope", "require", "wrong password"},
		{"server binds another certificate", otherBinding, "pw", "require", "channel binding mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startTestServer(t, secrets, Options{ChannelBinding: tt.binding}, tlsConfig)
			err := connect(t, fmt.Sprintf("postgres://app:%s@%s/db?sslmode=require&channel_binding=%s", tt.password, srv.addr(), tt.channelBinding))
			serverErr := srv.result(t)
			if tt.wantReason == "" {
				if err != nil || serverErr != nil {
					t.Fatalf("login failed: client %v, server %v", err, serverErr)
				}
				return
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
				t.Errorf("client got %v, want SQLSTATE 28P01", err)
			}
			wantFailed(t, serverErr, "app", tt.wantReason)
		})
	}
}

// TestTLSServerEndPointHash checks the RFC 5929 §4.1 hash choice.
func TestTLSServerEndPointHash(t *testing.T) {
	tests := []struct {
		alg  x509.SignatureAlgorithm
		hash crypto.Hash
	}{
		{x509.SHA1WithRSA, crypto.SHA256}, // MD5 and SHA-1 are upgraded to SHA-256
		{x509.ECDSAWithSHA1, crypto.SHA256},
		{x509.SHA256WithRSA, crypto.SHA256},
		{x509.ECDSAWithSHA384, crypto.SHA384},
		{x509.SHA512WithRSAPSS, crypto.SHA512},
	}
	raw := []byte("DER bytes of a certificate")
	for _, tt := range tests {
		got, err := TLSServerEndPoint(&x509.Certificate{Raw: raw, SignatureAlgorithm: tt.alg})
		if err != nil {
			t.Fatalf("%v: %v", tt.alg, err)
		}
		h := tt.hash.New()
		h.Write(raw)
		if !bytes.Equal(got, h.Sum(nil)) {
			t.Errorf("%v: binding is not the %v of the certificate", tt.alg, tt.hash)
		}
	}
	if _, err := TLSServerEndPoint(&x509.Certificate{Raw: raw, SignatureAlgorithm: x509.PureEd25519}); err == nil {
		t.Error("Ed25519 has no hash of its own; want an error as PostgreSQL gives")
	}
	if _, err := TLSServerEndPoint(nil); err == nil {
		t.Error("nil certificate accepted")
	}
}

func selfSignedTLS(t *testing.T) (*tls.Config, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pgrotate test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if cert.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Fatalf("test certificate signed with %v, want ECDSA with SHA-256", cert.SignatureAlgorithm)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}, cert
}
