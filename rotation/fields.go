package rotation

import (
	"strconv"
	"strings"
)

// Fixed reasons shared by every layout. Reasons never quote content.
const (
	reasonEmpty       = "is empty (file may be half-written)"
	reasonNoUsername  = "missing username"
	reasonNoPassword  = "missing password"
	reasonBadPort     = "port is not a number between 1 and 65535"
	reasonNULUsername = "username contains a NUL byte"
	reasonNULPassword = "password contains a NUL byte"
)

// fields is a credential as read from any layout, before validation.
type fields struct {
	username, password, host, port, dbname string
}

// credential validates f and returns the Credential, or a reason.
// Username and password are required; a NUL byte would cut the startup
// packet's strings short, so it is refused rather than sent.
func (f fields) credential() (Credential, string) {
	switch {
	case f.username == "":
		return Credential{}, reasonNoUsername
	case f.password == "":
		return Credential{}, reasonNoPassword
	case strings.IndexByte(f.username, 0) >= 0:
		return Credential{}, reasonNULUsername
	case strings.IndexByte(f.password, 0) >= 0:
		return Credential{}, reasonNULPassword
	}
	c := Credential{Username: f.username, Password: f.password, Host: f.host, DBName: f.dbname}
	if f.port != "" {
		p, err := strconv.Atoi(f.port)
		if err != nil || p < 1 || p > 65535 {
			return Credential{}, reasonBadPort
		}
		c.Port = p
	}
	return c, ""
}
