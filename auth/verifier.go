package auth

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/xdg-go/scram"
	"github.com/xdg-go/stringprep"
)

const (
	// DefaultSCRAMIterations is PostgreSQL's default scram_iterations.
	DefaultSCRAMIterations = 4096
	// scramSaltLen is PostgreSQL's SCRAM_DEFAULT_SALT_LEN.
	scramSaltLen = 16
)

// NewSCRAMVerifier makes a SCRAM-SHA-256 verifier for password exactly as
// PostgreSQL's scram_build_secret does: SASLprep the password (the raw bytes
// when SASLprep fails, as PostgreSQL's pg_saslprep callers do), a 16-byte
// random salt, and iterations (DefaultSCRAMIterations when 0).
func NewSCRAMVerifier(password string, iterations int) (string, error) {
	salt := make([]byte, scramSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("making SCRAM salt: %w", err)
	}
	return NewSCRAMVerifierWithSalt(password, salt, iterations)
}

// NewSCRAMVerifierWithSalt is NewSCRAMVerifier with a given salt. An operator
// uses it to mint a second verifier that overlaps with an existing one: one
// SCRAM exchange sends a single salt and iteration count, so only secrets
// sharing both can be accepted side by side (see the package overview).
func NewSCRAMVerifierWithSalt(password string, salt []byte, iterations int) (string, error) {
	if iterations == 0 {
		iterations = DefaultSCRAMIterations
	}
	if iterations < 0 || iterations > 1<<31-1 {
		return "", errors.New("making SCRAM verifier: iteration count must be a positive 32-bit integer")
	}
	if len(salt) == 0 {
		return "", errors.New("making SCRAM verifier: empty salt")
	}
	// The username only enters the exchange messages, not the stored keys,
	// and the password is prepared here already.
	client, err := scram.SHA256.NewClientUnprepped("", saslPrep(password), "")
	if err != nil {
		return "", fmt.Errorf("making SCRAM verifier: %w", err)
	}
	creds, err := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	if err != nil {
		return "", errors.New("making SCRAM verifier: deriving keys failed")
	}
	s := Secret{
		method:     MethodSCRAM,
		iterations: iterations,
		salt:       append([]byte(nil), salt...),
		storedKey:  creds.StoredKey,
		serverKey:  creds.ServerKey,
	}
	return s.format(), nil
}

// saslPrep normalizes a password the way PostgreSQL's pg_saslprep and its
// callers do: a pure-ASCII password is used as is, anything else goes through
// SASLprep (RFC 4013), and a password SASLprep rejects (prohibited or
// unassigned code points, invalid UTF-8) is used as raw bytes.
func saslPrep(password string) string {
	if isASCII(password) {
		return password
	}
	prepped, err := stringprep.SASLprep.Prepare(password)
	if err != nil || prepped == "" {
		return password
	}
	return prepped
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// MD5Secret returns PostgreSQL's md5 secret for user and password:
// "md5"+hex(md5(password+user)).
func MD5Secret(user, password string) string {
	sum := md5.Sum([]byte(password + user))
	return md5Prefix + hex.EncodeToString(sum[:])
}
