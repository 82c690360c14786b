// Package auth authenticates the applications that connect to pgrotate: the
// server side of PostgreSQL's client authentication, against pgrotate's own
// client list (never the upstream's).
//
// It owns three things:
//
//   - Secrets in PostgreSQL's own formats (ParseSecret): SCRAM-SHA-256
//     verifiers "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"
//     and legacy "md5<hex>" hashes, exactly what pg_authid.rolpassword holds,
//     so an operator can copy one from PostgreSQL or make one with
//     NewSCRAMVerifier (what `pgrotate passwd` prints).
//   - The exchange on the wire (Authenticate): SCRAM-SHA-256 (RFC 5802,
//     RFC 7677) through github.com/xdg-go/scram, SCRAM-SHA-256-PLUS with
//     tls-server-end-point channel binding (RFC 5929) when the client
//     connection is TLS, and md5 only when allowed and the user has nothing
//     better. Authenticate stops before AuthenticationOk; the proxy sends
//     that, and turns the errors returned here into ErrorResponses.
//   - The verifier constructors, which build verifiers byte for byte as
//     PostgreSQL does (SASLprep with raw-bytes fallback, 16-byte salt,
//     4096 iterations by default).
//
// # Several secrets per user
//
// A user may have several secrets so that the application's own password can
// be rotated with an overlap. A SCRAM exchange, however, shows the client a
// single salt and iteration count before the client computes its proof, so
// one exchange can only check secrets that share both. Authenticate uses the
// first SCRAM secret's salt and iteration count and accepts a proof that
// matches any secret with the same pair; SCRAM secrets with another salt are
// ignored. To overlap two passwords, mint the second verifier with
// NewSCRAMVerifierWithSalt and the first one's salt. md5 has no such limit:
// any md5 secret of the user may match.
//
// # Unknown users
//
// When the user is unknown (no secrets), or has only md5 secrets while md5 is
// not allowed, Authenticate runs a mock SCRAM exchange to the end, like
// PostgreSQL: the salt is derived from the user name with a keyed hash
// (Options.MockSaltKey), so it is as stable across attempts as a real one,
// and the exchange fails at the proof with the same FailedError a wrong
// password gets (Reason "unknown user" is for the log only). One difference
// remains visible, as in PostgreSQL: a user who has only an md5 secret and
// is allowed md5 is asked for md5, which an unknown user never is.
//
// No error or log line made here contains a password, a secret, a proof or a
// client-sent SCRAM message: a proof with its nonces and salt is enough for
// an offline dictionary attack on the password.
package auth
