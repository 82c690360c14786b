package auth

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"

	"github.com/jackc/pgx/v5/pgproto3"
)

// md5SaltLen is the length of the salt in AuthenticationMD5Password.
const md5SaltLen = 4

// authMD5 runs PostgreSQL's md5 exchange: the client answers a random salt
// with "md5"+hex(md5(hex(md5(password+user)) + salt)), which the server can
// check from the stored secret alone (PostgreSQL's md5_crypt_verify).
func authMD5(c *conn, secrets []Secret, opts Options) error {
	rawSalt, err := readRandom(opts.rand(), md5SaltLen)
	if err != nil {
		return err
	}
	var salt [md5SaltLen]byte
	copy(salt[:], rawSalt)
	if err := c.send(&pgproto3.AuthenticationMD5Password{Salt: salt}); err != nil {
		return err
	}
	msg, err := receiveAs[*pgproto3.PasswordMessage](c, pgproto3.AuthTypeMD5Password, "PasswordMessage")
	if err != nil {
		return err
	}
	// Compare against every secret, in constant time, so the time taken
	// does not tell which secret matched.
	matched := 0
	for _, s := range secrets {
		want := md5Response(s.md5Hex, salt)
		matched |= subtle.ConstantTimeCompare([]byte(msg.Password), []byte(want))
	}
	if matched != 1 {
		return &FailedError{User: c.user, Reason: "wrong password"}
	}
	return nil
}

// md5Response is the answer a client who knows the password sends for salt.
func md5Response(md5Hex string, salt [md5SaltLen]byte) string {
	sum := md5.Sum(append([]byte(md5Hex), salt[:]...))
	return md5Prefix + hex.EncodeToString(sum[:])
}
