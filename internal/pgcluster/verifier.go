package pgcluster

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/xdg-go/scram"
)

// scramIterations is PostgreSQL's default scram_iterations.
const scramIterations = 4096

// scramVerifier turns a password into the verifier PostgreSQL stores in
// pg_authid.rolpassword: SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>
// (RFC 5802/7677, PostgreSQL's scram_build_secret). Sending the verifier
// instead of the password keeps the password out of the server's statement
// log. Like PostgreSQL, it SASLprep-normalises the password and falls back to
// the raw bytes when SASLprep rejects it.
func scramVerifier(password string) (string, error) {
	client, err := scram.SHA256.NewClient("", password, "")
	if err != nil {
		client, err = scram.SHA256.NewClientUnprepped("", password, "")
	}
	if err != nil {
		return "", fmt.Errorf("preparing SCRAM verifier: %w", err)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("generating SCRAM salt: %w", err)
	}
	creds, err := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: scramIterations})
	if err != nil {
		return "", fmt.Errorf("deriving SCRAM keys: %w", err)
	}
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(creds.StoredKey), b64(creds.ServerKey)), nil
}
