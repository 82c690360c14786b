package auth

import (
	"crypto/rand"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Options controls one authentication exchange.
type Options struct {
	// AllowMD5 permits md5. It is used only when true AND the user has an
	// md5 secret and no SCRAM secret, as PostgreSQL does for "md5" in
	// pg_hba.conf.
	AllowMD5 bool
	// ChannelBinding is the tls-server-end-point binding data (RFC 5929,
	// see TLSServerEndPoint) of pgrotate's own certificate; nil when the
	// client connection is not TLS. When set, SCRAM-SHA-256-PLUS is offered
	// first and SCRAM-SHA-256 second, as PostgreSQL does.
	ChannelBinding []byte
	// Rand supplies salts and nonces; nil means crypto/rand. For tests.
	Rand io.Reader
	// MockSaltKey keys the fake salt shown for unknown users (see the
	// package overview). Replicas behind one address, or one process across
	// restarts, should share it so the fake salt stays as stable as a real
	// one; nil means a random key per process.
	MockSaltKey []byte
}

func (o Options) rand() io.Reader {
	if o.Rand == nil {
		return rand.Reader
	}
	return o.Rand
}

// Authenticate runs the authentication exchange for user on be, a
// pgproto3.Backend over the client connection whose startup message was
// already received. secrets is every valid secret for that user; nil or
// empty when the user is unknown, in which case a mock SCRAM exchange still
// runs to the end so that a client cannot tell an unknown user from a wrong
// password.
//
// On success Authenticate returns nil having sent everything before
// AuthenticationSASLFinal (SCRAM) and queued that one in be without
// flushing it: the caller sends AuthenticationOk, ParameterStatus and the
// rest on be and flushes them all in one write, which the client waits for
// anyway (one write and one wake-up of the client less per login).
// On failure it sends nothing further and returns a *FailedError, a
// *ProtocolError, an error wrapping ErrClientClosed, or an I/O error (such as
// a deadline the caller set on the connection); the caller turns errors
// into an ErrorResponse in one place.
//
// Authenticate does not limit message sizes: the caller should have called
// be.SetMaxBodyLen (PostgreSQL allows 65535 bytes per authentication
// message, PG_MAX_AUTH_TOKEN_LENGTH).
func Authenticate(be *pgproto3.Backend, user string, secrets []Secret, opts Options) error {
	c := &conn{be: be, user: user}
	m := choose(secrets, opts)
	if m.md5 != nil {
		return authMD5(c, m.md5, opts)
	}
	return authSCRAM(c, m.scram, m.mockReason, opts)
}

// method is the exchange a user's login runs: md5 with md5 secrets, or
// SCRAM with scram secrets; SCRAM with none is a mock exchange that fails
// for mockReason.
type method struct {
	scram, md5 []Secret
	mockReason string
}

func choose(secrets []Secret, opts Options) method {
	scramSecrets, md5Secrets := splitSecrets(secrets)
	switch {
	case len(scramSecrets) > 0:
		return method{scram: scramSecrets}
	case len(md5Secrets) > 0 && opts.AllowMD5:
		return method{md5: md5Secrets}
	case len(md5Secrets) > 0:
		// PostgreSQL does the same when pg_hba.conf says scram-sha-256 and
		// the user has only an md5 secret: a mock exchange that fails.
		return method{mockReason: "md5 secret but md5 not allowed"}
	default:
		return method{mockReason: "unknown user"}
	}
}

// splitSecrets returns the SCRAM secrets that one exchange can check (the
// first one and every other with the same salt and iteration count) and
// the md5 secrets.
func splitSecrets(secrets []Secret) (scramSecrets, md5Secrets []Secret) {
	for _, s := range secrets {
		switch {
		case s.method == MethodMD5:
			md5Secrets = append(md5Secrets, s)
		case s.method == MethodSCRAM && (len(scramSecrets) == 0 || s.SameKeyFactors(scramSecrets[0])):
			scramSecrets = append(scramSecrets, s)
		}
	}
	return scramSecrets, md5Secrets
}

// readRandom fills n bytes from r.
func readRandom(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("reading random bytes: %w", err)
	}
	return b, nil
}
