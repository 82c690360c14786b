package rotation

import (
	"bytes"
	"net/url"
	"strings"
)

const reasonBadURL = "not a valid postgres:// URL"

// parseURL reads a libpq connection URI
// (https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING-URIS):
// postgres://user:password@host:port/dbname, percent-decoded, with user,
// password, host, port and dbname also accepted as query parameters as libpq
// does. net/url's errors are not returned: they quote the URL, password
// included.
func parseURL(data []byte) (Credential, string) {
	s := string(bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\uFEFF"))))
	if s == "" {
		return Credential{}, reasonEmpty
	}
	if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		return Credential{}, "does not start with postgres:// or postgresql://"
	}
	u, err := url.Parse(s)
	if err != nil {
		return Credential{}, reasonBadURL
	}
	if strings.Contains(u.Host, ",") {
		return Credential{}, "multiple hosts are not supported"
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Credential{}, reasonBadURL
	}
	f := fields{host: u.Hostname(), port: u.Port()}
	if strings.HasSuffix(u.Host, ":") {
		return Credential{}, reasonBadPort
	}
	if u.User != nil {
		f.username = u.User.Username()
		f.password, _ = u.User.Password()
	}
	f.dbname = strings.TrimPrefix(u.Path, "/")
	for key, dst := range map[string]*string{
		"user": &f.username, "password": &f.password, "host": &f.host, "port": &f.port, "dbname": &f.dbname,
	} {
		if v := query.Get(key); v != "" && *dst == "" {
			*dst = v
		}
	}
	return f.credential()
}
