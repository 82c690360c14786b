package rotation

import (
	"crypto/sha256"
	"encoding/binary"
	"log/slog"
	"strconv"
	"strings"
)

// Credential is one complete executing-role credential, read from a source
// as one atomic unit so that a username is never paired with the password of
// another generation.
//
// Host, Port and DBName are optional overrides of the configured upstream;
// the zero value ("" or 0) means "use the configured upstream".
type Credential struct {
	Username string
	Password string
	Host     string
	Port     int
	DBName   string
}

// String returns the role name plus host, port and database when they are
// set, for logs and status pages. It never includes the password.
func (c Credential) String() string {
	var b strings.Builder
	b.WriteString(c.Username)
	if c.Host != "" || c.Port != 0 {
		b.WriteByte('@')
		b.WriteString(c.Host)
		if c.Port != 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(c.Port))
		}
	}
	if c.DBName != "" {
		b.WriteByte('/')
		b.WriteString(c.DBName)
	}
	return b.String()
}

// GoString keeps %#v from printing the password field.
func (c Credential) GoString() string {
	return "rotation.Credential{" + strconv.Quote(c.String()) + "}"
}

// LogValue makes slog print a Credential as its String, without the password.
func (c Credential) LogValue() slog.Value {
	return slog.StringValue(c.String())
}

// Equal reports whether c and o are the same credential in every field,
// password included: a password-only change is a rotation.
func (c Credential) Equal(o Credential) bool {
	return c == o
}

// hash returns a digest of every field. The watcher compares digests so that
// a touch or a rewrite of identical content is not a change. Each field is
// length-prefixed so that ("ab","c") and ("a","bc") differ.
func (c Credential) hash() [sha256.Size]byte {
	h := sha256.New()
	for _, f := range []string{c.Username, c.Password, c.Host, strconv.Itoa(c.Port), c.DBName} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
