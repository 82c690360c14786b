package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// osIdentity is who a child process runs as. A nil cred means "as
// benchrun itself".
type osIdentity struct {
	name string
	cred *syscall.Credential
}

// unprivilegedIdentity returns the "postgres" OS user when benchrun runs
// as root (PgBouncer refuses to run as root), and benchrun's own identity
// otherwise.
func unprivilegedIdentity() (osIdentity, error) {
	if os.Geteuid() != 0 {
		return osIdentity{name: "self"}, nil
	}
	const name = "postgres"
	u, err := user.Lookup(name)
	if err != nil {
		return osIdentity{}, fmt.Errorf("looking up OS user %q to run PgBouncer as (it refuses root): %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		return osIdentity{}, fmt.Errorf("looking up OS user %q: uid %q gid %q is not a usable non-root identity", name, u.Uid, u.Gid)
	}
	return osIdentity{name: name, cred: &syscall.Credential{
		Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)},
	}}, nil
}

// give hands paths to the identity so its process can read them; a no-op
// when it is benchrun itself.
func (id osIdentity) give(paths ...string) error {
	if id.cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(id.cred.Uid), int(id.cred.Gid)); err != nil {
			return fmt.Errorf("handing %s to OS user %s: %w", p, id.name, err)
		}
	}
	return nil
}
