package proxy

import (
	"strings"
	"testing"

	"github.com/pgrotate/pgrotate/auth"
	"github.com/pgrotate/pgrotate/configs"
)

// A SCRAM login shows the client one salt before it proves its password:
// verifiers of one client must share the first's salt and iterations, or
// the others' passwords could never log in. Such a list is refused, naming
// the client and the verifier; an overlap made with the first's salt, and
// an md5 verifier beside, are fine.
func TestClientVerifiersShareASalt(t *testing.T) {
	first, err := auth.NewSCRAMVerifier("app-password-1", 4096)
	if err != nil {
		t.Fatal(err)
	}
	old, err := auth.ParseSecret(first)
	if err != nil {
		t.Fatal(err)
	}
	overlap, err := auth.NewSCRAMVerifierWithSalt("app-password-2", old.Salt(), old.Iterations())
	if err != nil {
		t.Fatal(err)
	}
	other, err := auth.NewSCRAMVerifier("app-password-2", 4096)
	if err != nil {
		t.Fatal(err)
	}
	md5 := "md5" + strings.Repeat("0", 32)
	ok := []configs.Client{{User: "app", PasswordVerifiers: []string{md5, first, overlap}}}
	if _, err := newClientDirectory(ok, nil); err != nil {
		t.Fatalf("an overlap made with the first verifier's salt: %v", err)
	}
	bad := []configs.Client{{User: "app", PasswordVerifiers: []string{first}}}
	_, err = newClientDirectory(bad, map[string][]string{"app": {other}})
	if err == nil || !strings.Contains(err.Error(), `client "app": verifier 2 has another salt`) {
		t.Fatalf("verifiers with different salts: %v; want them refused, naming verifier 2", err)
	}
}
