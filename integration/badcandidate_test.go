package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A bad candidate never replaces the working credential and never fails a
// client: wrong password, a role that is not a member of the owner, garbage
// JSON, an empty file, a missing file. A good candidate afterwards is taken.
func TestBadCandidatesNeverSwitch(t *testing.T) {
	must(t, cluster.Exec(ctxT(t), dbName, "GRANT CONNECT ON DATABASE "+dbName+" TO "+nonMember))
	env := startProxy(t, setup{credKind: "json"})
	l := startLoad(t, env, 4)
	good := env.dbStatus()

	candidates := []struct {
		name  string
		write func()
		log   string // what the log says about it
	}{
		{"wrong password", func() { env.writeCredential(t, execRole1, "not-the-password") }, "password authentication failed"},
		{"not a member of the owner", func() { env.writeCredential(t, nonMember, strangerPw) }, "permission denied to set role"},
		{"garbage JSON", func() { writeFileAtomic(t, env.credPath(), `{"username": "x", "pass`) }, "unreadable"},
		{"empty file", func() { must(t, os.WriteFile(env.credPath(), nil, 0o600)) }, "empty"},
		{"missing file", func() { must(t, os.Remove(env.credPath())) }, "does not exist"},
	}
	for _, c := range candidates {
		t.Run(c.name, func(t *testing.T) {
			c.write()
			if strings.Contains(c.name, "password") || strings.Contains(c.name, "member") {
				env.waitForLog(t, "candidate rejected", c.log)
			} else {
				env.waitForLog(t, "credential source unreadable", c.log)
			}
			st := env.dbStatus()
			if st.CurrentRole != good.CurrentRole || st.Generation != good.Generation {
				t.Fatalf("switched to %s (generation %d) on a bad candidate", st.CurrentRole, st.Generation)
			}
			if got := queryStrings(t, env.connect(t), "SELECT session_user")[0]; got != execRole1 {
				t.Fatalf("new client runs as %s", got)
			}
		})
	}
	role, pw := nextRole(t, 1)
	must(t, os.MkdirAll(filepath.Dir(env.credPath()), 0o700))
	env.writeCredential(t, role, pw)
	env.waitRotated(t, role, time.Now())
	l.stop()
	if f := l.failed.Load(); f != 0 {
		t.Fatalf("%d failed transactions while bad candidates came and went (first: %v)", f, l.firstErr.Load())
	}
}
