package proxy

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"sync"
)

// cancelKey is the BackendKeyData pgrotate gives a client. It is pgrotate's own,
// never the server's: the server connection behind a client changes (pooling,
// rotation), and a client must not learn or reach another client's server.
type cancelKey struct {
	pid    uint32
	secret [4]byte
}

// cancelRegistry maps the keys handed to clients back to their sessions.
type cancelRegistry struct {
	mu       sync.Mutex
	sessions map[uint32]*session
}

func newCancelRegistry() *cancelRegistry {
	return &cancelRegistry{sessions: make(map[uint32]*session)}
}

// register gives s a fresh unique key.
func (r *cancelRegistry) register(s *session) cancelKey {
	var b [8]byte
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		_, _ = rand.Read(b[:])
		pid := binary.BigEndian.Uint32(b[:4]) & 0x7fffffff // positive, like a real PID
		if _, taken := r.sessions[pid]; pid == 0 || taken {
			continue
		}
		k := cancelKey{pid: pid}
		copy(k.secret[:], b[4:])
		r.sessions[pid] = s
		return k
	}
}

func (r *cancelRegistry) unregister(k cancelKey) {
	r.mu.Lock()
	delete(r.sessions, k.pid)
	r.mu.Unlock()
}

// lookup returns the session whose key matches, comparing the secret in
// constant time.
func (r *cancelRegistry) lookup(pid uint32, secret []byte) (*session, bool) {
	r.mu.Lock()
	s, ok := r.sessions[pid]
	r.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare(s.key.secret[:], secret) != 1 {
		return nil, false
	}
	return s, true
}

// each calls f for every registered session, outside the lock.
func (r *cancelRegistry) each(f func(*session)) {
	r.mu.Lock()
	all := make([]*session, 0, len(r.sessions))
	for _, s := range r.sessions {
		all = append(all, s)
	}
	r.mu.Unlock()
	for _, s := range all {
		f(s)
	}
}
