package configs_test

import (
	"strings"
	"testing"

	"github.com/pgrotate/pgrotate/configs"
)

// appVerifier is a real SCRAM-SHA-256 verifier (of "app-password-1").
const appVerifier = "SCRAM-SHA-256$4096:elqcc8Za42Up8D1QiUTpAA==$7Wgh28+gmgXNHdp1tKmBtAzRgVSal0aiq09xFf/pIr0=:Ax9+JEW435aPMYO6kmLoPIOCyUvfH+7vhdDff5SYxJ4="

// yamlLines joins lines into a file; writing one line per argument keeps
// the line numbers that the tests assert easy to count.
func yamlLines(lines ...string) string {
	return strings.ReplaceAll(strings.Join(lines, "\n")+"\n", "VERIFIER", appVerifier)
}

// validDoc is the smallest valid config, spelled out line by line.
var validDoc = yamlLines(
	"databases:",                          // 1
	"  bookstore:",                        // 2
	"    owner_role: bookstore_owner",     // 3
	"    credentials:",                    // 4
	"      path: /etc/pgrotate/bookstore", // 5
	"clients:",                            // 6
	"  - user: bookstore_app",             // 7
	"    password_verifier: VERIFIER",     // 8
)

// mustParse parses doc and fails the test on any error.
func mustParse(t *testing.T, doc string) *configs.Config {
	t.Helper()
	c, err := configs.Parse([]byte(doc), "pgrotate.yaml")
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return c
}
