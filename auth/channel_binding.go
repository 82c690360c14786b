package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/xdg-go/scram"
)

// TLSServerEndPoint returns the tls-server-end-point channel binding data
// (RFC 5929 §4.1) for pgrotate's own certificate cert: its DER hashed with
// SHA-256 when the certificate is signed with MD5 or SHA-1, else with the
// hash of its signature algorithm. Pass the result as
// Options.ChannelBinding on TLS connections. Like PostgreSQL, it fails for
// signature algorithms without a hash of their own, such as Ed25519.
func TLSServerEndPoint(cert *x509.Certificate) ([]byte, error) {
	if cert == nil {
		return nil, errors.New("computing tls-server-end-point: no certificate")
	}
	// xdg-go/scram implements the RFC 5929 hash choice for the peer's
	// certificate; our own certificate is the client's peer certificate.
	state := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	cb, err := scram.NewTLSServerEndpointBinding(state)
	if err != nil {
		return nil, fmt.Errorf("computing tls-server-end-point: %w", err)
	}
	return cb.Data, nil
}
