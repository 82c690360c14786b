package integration

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pgrotate/pgrotate/auth"
)

// The app's own password rotates with overlap: while its password_file
// holds both verifiers, both passwords log in; then the old one is retired.
// No moment refuses the password an app instance is using.
func TestClientPasswordRotatesWithOverlap(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bookstore_app.verifiers")
	oldV, err := auth.NewSCRAMVerifier(appPass, 4096)
	must(t, err)
	writeFileAtomic(t, file, "# the app's verifiers\n"+oldV+"\n")
	env := startProxy(t, setup{clientFile: file})
	env.connect(t)

	const newPass = "app-new-pass-Qr"
	parsed, err := auth.ParseSecret(oldV)
	must(t, err)
	newV, err := auth.NewSCRAMVerifierWithSalt(newPass, parsed.Salt(), parsed.Iterations())
	must(t, err)
	writeFileAtomic(t, file, oldV+"\n"+newV+"\n")
	waitFor(t, func() bool { c, err := connectAs(env, appUser, newPass); closeIf(c); return err == nil }, "the new password to work")
	if c, err := connectAs(env, appUser, appPass); err != nil {
		t.Fatalf("the old password stopped working during the overlap: %v", err)
	} else {
		closeIf(c)
	}

	writeFileAtomic(t, file, newV+"\n")
	waitFor(t, func() bool { c, err := connectAs(env, appUser, appPass); closeIf(c); return sqlState(err) == "28P01" }, "the old password to be refused")
	c, err := connectAs(env, appUser, newPass)
	must(t, err)
	closeIf(c)

	// A broken file keeps the last good verifiers.
	must(t, os.WriteFile(file, []byte("SCRAM-SHA-256$garbage\n"), 0o600))
	env.waitForLog(t, "client verifiers not reloaded")
	c, err = connectAs(env, appUser, newPass)
	must(t, err)
	closeIf(c)
}
