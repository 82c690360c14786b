package rotation

import (
	"context"
	"errors"
)

// plan is where a run stands, derived from the database and the file (see
// the crash-safety comment in lifecycle.go), and what it will do.
type plan struct {
	// file is the credential the file holds; fileOK says it could be read.
	file   Credential
	fileOK bool
	// target is the role that will be current; create says it must be
	// created, reset that it exists but needs a new password (step 1 was
	// done, step 2 not); write says the file must be written.
	target        string
	create, reset bool
	write         bool
	// retire are older roles to drop (oldest first); keep those kept.
	retire, keep []string
	// pending is true when the run resumes an earlier one.
	pending bool
}

// derivePlan reads the state. forceNew starts a new rotation when nothing is
// pending (rotate); without it a converged state means nothing to do
// (setup).
func (l *Lifecycle) derivePlan(ctx context.Context, forceNew bool) (plan, []ExecRole, error) {
	all, err := listExecRoles(ctx, l.Admin, l.Owner, l.prefix())
	if err != nil {
		return plan{}, nil, err
	}
	var p plan
	p.file, err = Read(l.Credentials, l.Format)
	p.fileOK = err == nil
	var srcErr *SourceError
	if err != nil && !errors.As(err, &srcErr) {
		return plan{}, nil, err
	}
	roles := members(all)
	nextSeq := 1
	if len(all) > 0 {
		nextSeq = all[len(all)-1].Seq + 1
	}
	fileIdx := -1
	for i, r := range roles {
		if p.fileOK && r.Name == p.file.Username {
			fileIdx = i
		}
	}
	newest := len(roles) - 1
	switch {
	case fileIdx >= 0 && fileIdx < newest:
		p.target, p.reset, p.write, p.pending = roles[newest].Name, true, true, true
	case fileIdx >= 0 && fileIdx == newest:
		p.target = roles[newest].Name
		if len(roles)-1 > l.KeepPrevious {
			p.pending = true
		} else if forceNew {
			p.target, p.create, p.write = roleName(l.prefix(), nextSeq), true, true
		}
	default:
		p.target, p.create, p.write = roleName(l.prefix(), nextSeq), true, true
	}
	p.retire, p.keep = l.splitOlder(roles, p.target)
	return p, roles, nil
}

// splitOlder divides the roles other than target into the keep_previous
// newest, kept, and the rest, retired oldest first.
func (l *Lifecycle) splitOlder(roles []ExecRole, target string) (retire, keep []string) {
	var older []string
	for _, r := range roles {
		if r.Name != target {
			older = append(older, r.Name)
		}
	}
	n := max(0, len(older)-l.KeepPrevious)
	return older[:n], older[n:]
}

// changes reports whether the plan does anything.
func (p plan) changes() bool {
	return p.create || p.reset || p.write || len(p.retire) > 0
}
