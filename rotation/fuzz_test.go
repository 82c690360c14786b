package rotation

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// safeReasons are every reason the content parsers may return, with numbers
// as N. A reason outside this list might quote the content.
var safeReasons = []string{
	reasonEmpty, reasonTruncatedJSON, reasonNotObject, "invalid JSON", "invalid JSON at byte offset N",
	reasonNoUsername, reasonNoPassword, reasonNULUsername, reasonNULPassword, reasonBadPort, reasonBadURL,
	"multiple hosts are not supported", "not a JSON object or a postgres:// URL",
	"does not start with postgres:// or postgresql://",
	`field "username" is not a string`, `field "user" is not a string`, `field "password" is not a string`,
	`field "host" is not a string`, `field "dbname" is not a string`, `field "database" is not a string`,
}

var digits = regexp.MustCompile(`[0-9]+`)

// isSafeReason reports whether reason is one of safeReasons, numbers aside.
func isSafeReason(reason string) bool {
	for _, r := range safeReasons {
		if digits.ReplaceAllString(r, "N") == digits.ReplaceAllString(reason, "N") {
			return true
		}
	}
	return false
}

// FuzzRead feeds arbitrary JSON and URL file contents to the parsers Read
// uses. They must not panic, must return only fixed reasons (so no content
// reaches a log), must return a complete credential on success, and a parsed
// JSON credential must survive a round trip.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"username":"bookstore_user_0002","password":"pw","port":5432}`))
	f.Add([]byte(`postgres://u:p%40w@h:5432/db`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, format := range []Format{FormatAuto, FormatJSON, FormatURL} {
			c, reason := parseContent(data, format)
			if reason != "" {
				if !isSafeReason(reason) {
					t.Fatalf("parseContent(%s) reason %q is not a fixed text", format, reason)
				}
				continue
			}
			checkParsed(t, c)
			if format == FormatJSON {
				checkJSONRoundTrip(t, c)
			}
		}
	})
}

func checkParsed(t *testing.T, c Credential) {
	t.Helper()
	if c.Username == "" || c.Password == "" || c.Port < 0 || c.Port > 65535 {
		t.Fatalf("parsed an incomplete credential %#v", c)
	}
	others := c.Username + c.Host + c.DBName + "@:/0123456789"
	if strings.Contains(c.String(), c.Password) && !strings.Contains(others, c.Password) {
		t.Fatalf("String() shows the password")
	}
}

func checkJSONRoundTrip(t *testing.T, c Credential) {
	t.Helper()
	obj := map[string]any{"username": c.Username, "password": c.Password, "host": c.Host, "dbname": c.DBName}
	if c.Port != 0 {
		obj["port"] = c.Port
	}
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	back, reason := parseJSON(data)
	if reason != "" || !back.Equal(c) {
		t.Fatalf("round trip of %s: got %s, reason %q", c, back, reason)
	}
}
