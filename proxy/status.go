package proxy

import (
	"cmp"
	"slices"
	"sync"

	"github.com/pgrotate/pgrotate/rotation"
)

// GenerationStatus counts the server connections of one credential
// generation of a database.
type GenerationStatus struct {
	Generation uint64 `json:"generation"`
	Role       string `json:"role"`
	Current    bool   `json:"current"`
	Idle       int    `json:"idle"`
	Busy       int    `json:"busy"`
	// Drained is true for a past generation with no server connection left.
	Drained bool `json:"drained"`
	// SafeToRetire is true for a drained generation whose role no database
	// of this pgrotate uses any more, neither as its current role nor
	// through a server connection (MarkRetirable): the role may be retired.
	// A password-only rotation drains a generation whose role stays current.
	SafeToRetire bool `json:"safe_to_retire"`
}

// PoolStatus is the state of one database's pool.
type PoolStatus struct {
	Clients int `json:"clients"`
	// Waiting counts the clients waiting for a server connection.
	Waiting     int                `json:"waiting"`
	Generations []GenerationStatus `json:"generations"`
}

// Status returns every pool's state, by database name.
func (s *Server) Status() map[string]PoolStatus {
	out := make(map[string]PoolStatus, len(s.pools))
	for name, p := range s.pools {
		out[name] = PoolStatus{
			Clients:     int(p.clients.Load()),
			Waiting:     int(p.goWaiters.Load() + p.loopWaiting.Load()),
			Generations: p.conns.snapshot(p.currentGen()),
		}
	}
	return out
}

// connState is where a server connection is in its life.
type connState int32

const (
	// connIdle: in the pool, ready to be leased.
	connIdle connState = iota
	// connLeased: held by a client session.
	connLeased
)

// maxRememberedGenerations bounds how many drained generations /status keeps.
const maxRememberedGenerations = 8

// connSet tracks a pool's open server connections by generation, for status
// and for knowing when a generation has drained.
type connSet struct {
	mu    sync.Mutex
	conns map[*serverConn]struct{}
	roles map[uint64]string // every generation seen, drained ones included
	// dialing counts the logins in progress per generation: a generation
	// with one under way has not drained, as its role is still used.
	dialing map[uint64]int
}

func newConnSet() *connSet {
	return &connSet{conns: make(map[*serverConn]struct{}), roles: make(map[uint64]string), dialing: make(map[uint64]int)}
}

// dialStart records a login of generation gen in progress.
func (c *connSet) dialStart(gen rotation.Generation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dialing[gen.N]++
	c.roles[gen.N] = gen.Cred.Username
}

// dialEnd records the end of a login of generation n begun with
// dialStart, and the connection it made, if any, at once: the generation
// never counts zero in between. It returns how many connections of the
// generation are open or being opened now.
func (c *connSet) dialEnd(n uint64, sc *serverConn) (left int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dialing[n]--; c.dialing[n] == 0 {
		delete(c.dialing, n)
	}
	if sc != nil {
		c.conns[sc] = struct{}{}
	}
	return c.countLocked(n)
}

// noteGeneration records a generation even before it has a connection.
func (c *connSet) noteGeneration(n uint64, role string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roles[n] = role
}

// remove forgets sc and reports how many connections of its generation
// remain, open or being opened.
func (c *connSet) remove(sc *serverConn) (left int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.conns, sc)
	return c.countLocked(sc.gen.N)
}

// countLocked is count with mu held.
func (c *connSet) countLocked(n uint64) int {
	k := c.dialing[n]
	for o := range c.conns {
		if o.gen.N == n {
			k++
		}
	}
	return k
}

// usesRole reports whether any open connection logged in as role.
func (c *connSet) usesRole(role string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for sc := range c.conns {
		if sc.gen.Cred.Username == role {
			return true
		}
	}
	for n := range c.dialing {
		if c.roles[n] == role {
			return true
		}
	}
	return false
}

// count returns the connections of generation n, open or being opened.
func (c *connSet) count(n uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.countLocked(n)
}

// countBefore returns the open connections of generations older than n.
func (c *connSet) countBefore(n uint64) int {
	return c.countIf(func(g uint64) bool { return g < n })
}

func (c *connSet) countIf(match func(gen uint64) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := 0
	for o := range c.conns {
		if match(o.gen.N) {
			k++
		}
	}
	return k
}

func (c *connSet) snapshot(current uint64) []GenerationStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	byGen := make(map[uint64]*GenerationStatus)
	for n, role := range c.roles {
		byGen[n] = &GenerationStatus{Generation: n, Role: role}
	}
	for sc := range c.conns {
		g := byGen[sc.gen.N]
		if connState(sc.state.Load()) == connLeased {
			g.Busy++
		} else {
			g.Idle++
		}
	}
	for n, k := range c.dialing { // being opened for a client: busy already
		byGen[n].Busy += k
	}
	var out []GenerationStatus
	for _, g := range byGen {
		out = append(out, *g)
	}
	out = GenerationsAsOf(out, current)
	slices.SortFunc(out, func(a, b GenerationStatus) int { return cmp.Compare(b.Generation, a.Generation) })
	// Forget the oldest drained generations beyond the bound.
	for len(out) > maxRememberedGenerations && out[len(out)-1].Drained {
		delete(c.roles, out[len(out)-1].Generation)
		out = out[:len(out)-1]
	}
	return out
}

// MarkRetirable sets SafeToRetire on the drained generations of every
// database (gens, one list per database) whose role none of them uses:
// as a current role (current, one per database) or in a generation that
// still has server connections.
func MarkRetirable(gens [][]GenerationStatus, current []string) {
	inUse := make(map[string]bool)
	for _, role := range current {
		inUse[role] = true
	}
	for _, list := range gens {
		for _, g := range list {
			if g.Idle+g.Busy > 0 {
				inUse[g.Role] = true
			}
		}
	}
	for _, list := range gens {
		for i := range list {
			list[i].SafeToRetire = list[i].Drained && !inUse[list[i].Role]
		}
	}
}

// GenerationsAsOf marks each generation current or drained as seen from
// generation current: drained is a generation older than current with no
// server connection left. A newer one (promoted after current was read) is
// neither. Whoever reports the current generation next to the list uses the
// same number, so the two cannot disagree around a promotion: read apart,
// the old generation looked current and every other one drained.
func GenerationsAsOf(gens []GenerationStatus, current uint64) []GenerationStatus {
	for i := range gens {
		g := &gens[i]
		g.Current = g.Generation == current
		g.Drained = g.Generation < current && g.Idle+g.Busy == 0
	}
	return gens
}
