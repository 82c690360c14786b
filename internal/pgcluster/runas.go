package pgcluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serverUser is the OS identity initdb, pg_ctl and postgres run as. A nil
// credential means "as this process".
type serverUser struct {
	name string
	cred *syscall.Credential
}

// resolveServerUser picks the OS user for the server processes: RunAs
// (default "postgres") when we are root, because initdb and pg_ctl refuse
// root; ourselves otherwise.
func resolveServerUser(runAs string) (serverUser, error) {
	if os.Geteuid() != 0 {
		return serverUser{name: "self"}, nil
	}
	if runAs == "" {
		runAs = "postgres"
	}
	u, err := user.Lookup(runAs)
	if err != nil {
		return serverUser{}, fmt.Errorf("looking up OS user %q to run PostgreSQL as (initdb refuses root): %w", runAs, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		return serverUser{}, fmt.Errorf("looking up OS user %q: uid %q gid %q is not a usable non-root identity", runAs, u.Uid, u.Gid)
	}
	return serverUser{name: runAs, cred: &syscall.Credential{
		Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)},
	}}, nil
}

// chown gives path to the server user; a no-op when running as ourselves.
func (u serverUser) chown(path string) error {
	if u.cred == nil {
		return nil
	}
	if err := os.Lchown(path, int(u.cred.Uid), int(u.cred.Gid)); err != nil {
		return fmt.Errorf("handing %s to OS user %s: %w", path, u.name, err)
	}
	return nil
}

// run executes a server binary as the server user in dir and returns its
// combined output. The output is kept even on error so callers can show it.
func (u serverUser) run(ctx context.Context, dir, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir // the server user may not be able to enter our working directory
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// pg_ctl start leaves the postmaster running with its output in the log
	// file; WaitDelay guards against any child that still holds our pipe.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}
