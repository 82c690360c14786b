package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"strings"
)

// Method is a client authentication method.
type Method int

const (
	// MethodSCRAM is SCRAM-SHA-256 (RFC 7677), with or without channel binding.
	MethodSCRAM Method = iota + 1
	// MethodMD5 is PostgreSQL's legacy md5 challenge-response.
	MethodMD5
)

// String returns the method's name as PostgreSQL spells it in pg_hba.conf.
func (m Method) String() string {
	switch m {
	case MethodSCRAM:
		return "scram-sha-256"
	case MethodMD5:
		return "md5"
	}
	return "Method(" + strconv.Itoa(int(m)) + ")"
}

const (
	scramPrefix = "SCRAM-SHA-256$"
	md5Prefix   = "md5"
	// scramKeyLen is the length of StoredKey and ServerKey: a SHA-256 digest.
	scramKeyLen = sha256.Size
	// md5HexLen is the length of the hex digest after "md5", as PostgreSQL's
	// get_password_type checks it.
	md5HexLen = 32
)

// The errors ParseSecret returns. They are fixed texts on purpose: an error
// about a secret must never quote it.
var (
	errUnknownFormat   = errors.New("parsing secret: neither a SCRAM-SHA-256 verifier nor an md5 hash")
	errSCRAMLayout     = errors.New(`parsing SCRAM secret: want "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"`)
	errSCRAMIterations = errors.New("parsing SCRAM secret: iteration count is not a positive 32-bit integer")
	errSCRAMBase64     = errors.New("parsing SCRAM secret: invalid base64")
	errSCRAMSalt       = errors.New("parsing SCRAM secret: empty salt")
	errSCRAMKeyLen     = errors.New("parsing SCRAM secret: StoredKey and ServerKey must be 32 bytes")
	errMD5Format       = errors.New(`parsing md5 secret: want "md5" and 32 lowercase hex digits`)
)

// Secret is one stored client credential, parsed from PostgreSQL's own
// formats (what pg_authid.rolpassword holds). Its zero value is no credential
// and matches nothing. Its String, GoString and LogValue are redacted so that
// printing or logging a Secret never shows the verifier.
type Secret struct {
	method Method
	// SCRAM: salt and iterations are the KeyFactors the client needs;
	// storedKey and serverKey are what the server checks the proof with.
	iterations int
	salt       []byte
	storedKey  []byte
	serverKey  []byte
	// md5: the 32 lowercase hex digits after "md5", i.e. hex(md5(password+user)).
	md5Hex string
}

// ParseSecret parses "SCRAM-SHA-256$<iterations>:<base64 salt>$<base64
// StoredKey>:<base64 ServerKey>" or "md5<32 lowercase hex>", following
// PostgreSQL's parse_scram_secret and get_password_type. The returned error
// never contains s.
func ParseSecret(s string) (Secret, error) {
	switch {
	case strings.HasPrefix(s, scramPrefix):
		return parseSCRAMSecret(s[len(scramPrefix):])
	case strings.HasPrefix(s, md5Prefix):
		return parseMD5Secret(s[len(md5Prefix):])
	}
	return Secret{}, errUnknownFormat
}

func parseSCRAMSecret(s string) (Secret, error) {
	factors, keys, ok := strings.Cut(s, "$")
	if !ok {
		return Secret{}, errSCRAMLayout
	}
	iterText, saltText, ok1 := strings.Cut(factors, ":")
	storedText, serverText, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return Secret{}, errSCRAMLayout
	}
	iterations, err := strconv.ParseInt(iterText, 10, 32)
	if err != nil || iterations <= 0 {
		return Secret{}, errSCRAMIterations
	}
	salt, err1 := base64.StdEncoding.Strict().DecodeString(saltText)
	stored, err2 := base64.StdEncoding.Strict().DecodeString(storedText)
	server, err3 := base64.StdEncoding.Strict().DecodeString(serverText)
	if err1 != nil || err2 != nil || err3 != nil {
		return Secret{}, errSCRAMBase64
	}
	if len(salt) == 0 {
		return Secret{}, errSCRAMSalt
	}
	if len(stored) != scramKeyLen || len(server) != scramKeyLen {
		return Secret{}, errSCRAMKeyLen
	}
	return Secret{method: MethodSCRAM, iterations: int(iterations), salt: salt, storedKey: stored, serverKey: server}, nil
}

func parseMD5Secret(h string) (Secret, error) {
	// PostgreSQL accepts only lowercase hex here; anything else it stores
	// as a plaintext password, which pgrotate never accepts.
	if len(h) != md5HexLen || strings.ToLower(h) != h {
		return Secret{}, errMD5Format
	}
	if _, err := hex.DecodeString(h); err != nil {
		return Secret{}, errMD5Format
	}
	return Secret{method: MethodMD5, md5Hex: h}, nil
}

// Method returns the authentication method the secret serves, or 0 for the
// zero Secret.
func (s Secret) Method() Method { return s.method }

// Iterations returns the SCRAM iteration count, or 0 for an md5 secret.
func (s Secret) Iterations() int { return s.iterations }

// Salt returns a copy of the SCRAM salt, or nil for an md5 secret. The salt
// is not secret (the server shows it to every client that asks); `pgrotate
// passwd` passes it to NewSCRAMVerifierWithSalt to mint an overlapping
// verifier.
func (s Secret) Salt() []byte { return bytes.Clone(s.salt) }

// String returns the secret with its salt, keys and hash redacted, e.g.
// "SCRAM-SHA-256$4096:<redacted>".
func (s Secret) String() string {
	switch s.method {
	case MethodSCRAM:
		return scramPrefix + strconv.Itoa(s.iterations) + ":<redacted>"
	case MethodMD5:
		return md5Prefix + "<redacted>"
	}
	return "<no secret>"
}

// GoString makes %#v as redacted as %v.
func (s Secret) GoString() string { return "auth.Secret(" + s.String() + ")" }

// LogValue makes slog print the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// format returns the full PostgreSQL text form. It is unexported on purpose:
// only the verifier constructors need it, and they hand it to the operator.
func (s Secret) format() string {
	enc := base64.StdEncoding.EncodeToString
	switch s.method {
	case MethodSCRAM:
		return scramPrefix + strconv.Itoa(s.iterations) + ":" + enc(s.salt) + "$" + enc(s.storedKey) + ":" + enc(s.serverKey)
	case MethodMD5:
		return md5Prefix + s.md5Hex
	}
	return ""
}

// SameKeyFactors reports whether s and o are SCRAM secrets with the same
// salt and iteration count, i.e. whether one SCRAM exchange can check both.
func (s Secret) SameKeyFactors(o Secret) bool {
	return s.method == MethodSCRAM && o.method == MethodSCRAM &&
		s.iterations == o.iterations && bytes.Equal(s.salt, o.salt)
}
