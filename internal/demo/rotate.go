package demo

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/pgrotate/pgrotate/internal/daemon"
	"github.com/pgrotate/pgrotate/internal/pgcluster"
	"github.com/pgrotate/pgrotate/proxy"
)

// promoteTimeout bounds one rotation up to promotion: creating the role,
// publishing the credential, and pgrotate validating and switching to it.
// pgrotate polls the directory every second even if it missed the event.
const promoteTimeout = 15 * time.Second

// pollEvery is how often the demo looks at pgrotate's status (an
// in-memory snapshot) while it waits for a promotion or a drain.
const pollEvery = 20 * time.Millisecond

var bookstore = pgcluster.Bookstore{DB: dbName, Owner: ownerRole}

// roleName is the n-th executing role.
func roleName(n int) string { return fmt.Sprintf("bookstore_user_%04d", n) }

// newPassword returns a random password (crypto/rand, 26 base32 characters).
// It is written to the credential file and nowhere else.
func newPassword() string { return rand.Text() }

// rotator rotates the executing role on a schedule, as an operator's
// rotation job would: create the next role, publish it in the Secret, wait
// for pgrotate to use it, then retire the old role once pgrotate has no
// connection of it left.
type rotator struct {
	cluster  *pgcluster.Cluster
	secret   *secretDir
	daemon   *runningDaemon
	journal  *journal
	current  int // number of the current executing role
	retirers sync.WaitGroup
	// ddl serialises creating and dropping roles: both update the
	// database's ACL (GRANT/REVOKE CONNECT), and PostgreSQL fails one of two
	// concurrent updates of a catalog row with "tuple concurrently updated".
	ddl sync.Mutex
}

// run rotates every `every` until stop is closed. A rotation in progress
// is finished first. It returns early when a rotation fails, since the next
// one would start from an unknown state. Call wait afterwards for retirements.
func (r *rotator) run(every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if !r.rotate() {
			return
		}
	}
}

// wait waits until every started retirement has finished.
func (r *rotator) wait() { r.retirers.Wait() }

// rotate does one rotation up to promotion, and starts the old role's
// retirement. It reports whether the rotation got that far.
func (r *rotator) rotate() bool {
	ctx, cancel := context.WithTimeout(context.Background(), promoteTimeout)
	defer cancel()
	from, to := roleName(r.current), roleName(r.current+1)
	fromGen := r.status().Generation
	password := newPassword()
	if err := r.createRole(ctx, to, password); err != nil {
		r.journal.fail(0, "%v", err)
		return false
	}
	n := r.journal.begin(from, to, fromGen)
	if err := r.secret.publish(to, password); err != nil {
		r.journal.fail(n, "%v", err)
		return false
	}
	swapped := time.Now()
	r.journal.update(n, func(rot *Rotation) { rot.SwappedAt = swapped })
	gen, err := r.waitPromotion(ctx, to)
	if err != nil {
		st := r.status()
		r.journal.fail(n, "pgrotate did not switch to %s within %s (still %s; %d validation failures, last: %s)",
			to, promoteTimeout, st.CurrentRole, st.ValidationFailures, st.LastFailure)
		return false
	}
	promoted := time.Now()
	r.journal.update(n, func(rot *Rotation) { rot.PromotedAt, rot.ToGen = promoted, gen })
	r.current++
	r.retirers.Go(func() { r.retire(n, from, fromGen, promoted) })
	return true
}

// status is pgrotate's view of the demo's one database.
func (r *rotator) status() daemon.DatabaseStatus {
	return databaseStatus(r.daemon.Status())
}

func databaseStatus(st daemon.Status) daemon.DatabaseStatus {
	if len(st.Databases) == 0 {
		return daemon.DatabaseStatus{}
	}
	return st.Databases[0]
}

// waitPromotion waits until pgrotate's current role is role and returns
// its generation.
func (r *rotator) waitPromotion(ctx context.Context, role string) (uint64, error) {
	return pollEach(ctx, pollEvery, func() (uint64, bool) {
		st := r.status()
		return st.Generation, st.CurrentRole == role
	})
}

// retire waits until generation gen (role) has drained, then drops role.
func (r *rotator) retire(n int, role string, gen uint64, promoted time.Time) {
	deadline := promoted.Add(drainTimeout + drainMargin)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	_, err := pollEach(ctx, pollEvery, func() (proxy.GenerationStatus, bool) {
		g, found := generation(r.status(), gen)
		return g, !found || g.Drained
	})
	cancel()
	if err != nil {
		g, _ := generation(r.status(), gen)
		r.journal.fail(n, "generation %d (%s) not drained %s after promotion: %d idle, %d busy server connections",
			gen, role, drainTimeout+drainMargin, g.Idle, g.Busy)
		return
	}
	drained := time.Now()
	r.journal.update(n, func(rot *Rotation) { rot.DrainedAt = drained })
	owned, err := r.drop(role)
	if err != nil {
		r.journal.fail(n, "%v", err)
		return
	}
	dropped := time.Now()
	r.journal.update(n, func(rot *Rotation) { rot.DroppedAt, rot.OwnedByOld = dropped, owned })
}

// drop drops role once PostgreSQL shows no session of it (a backend exits
// a moment after pgrotate closes its connection), and returns how many
// objects it owned.
func (r *rotator) drop(role string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	left, err := pollEach(ctx, 100*time.Millisecond, func() (int, bool) {
		k, err := r.cluster.Sessions(ctx, role)
		return k, err == nil && k == 0
	})
	if err != nil {
		return 0, fmt.Errorf("pgrotate reported %s drained, but pg_stat_activity still shows %d sessions of it", role, left)
	}
	r.ddl.Lock()
	defer r.ddl.Unlock()
	owned, err := ownedBy(ctx, r.cluster, role)
	if err != nil {
		return 0, err
	}
	return owned, dropRole(ctx, r.cluster, role)
}

// createRole creates the executing role role.
func (r *rotator) createRole(ctx context.Context, role, password string) error {
	r.ddl.Lock()
	defer r.ddl.Unlock()
	return r.cluster.CreateExecutingRole(ctx, bookstore, role, password)
}

// generation finds generation n in a status.
func generation(st daemon.DatabaseStatus, n uint64) (proxy.GenerationStatus, bool) {
	for _, g := range st.Generations {
		if g.Generation == n {
			return g, true
		}
	}
	return proxy.GenerationStatus{}, false
}

// pollEach calls check every interval until it reports done or ctx ends,
// and returns its last value.
func pollEach[T any](ctx context.Context, interval time.Duration, check func() (T, bool)) (T, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		v, done := check()
		if done {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-t.C:
		}
	}
}
