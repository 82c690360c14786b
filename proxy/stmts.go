package proxy

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Named prepared statements in transaction pooling (pgx's statement cache,
// JDBC, psycopg 3, pgbench -M prepared): a client prepares "S1" on one server
// connection and executes it on whichever it holds next. pgrotate renames
// every client statement to a server-side name shared by all clients that
// prepare the same text (so a server connection holds each distinct statement
// once, as PgBouncer does), remembers each client's statements, and prepares
// a statement on a server connection that lacks it just before the Bind or
// Describe that needs it.

// stmtRegistry gives each distinct statement (text and parameter types) of a
// database, prepared under the same client settings, one server-side name.
// PostgreSQL reads a statement's constants as it parses it, with the
// session's TimeZone, DateStyle, IntervalStyle…: '2020-01-02'::date or
// '00:00'::timestamptz in a statement one client prepared would otherwise
// mean the same to every client that shares it, whatever its own settings.
//
// It remembers the statements of the last two generations, each of
// registryGeneration distinct statements or registryGenerationBytes of
// their text, whichever comes first (a statement prepared again moves to
// the current one), so that an app that makes up statement texts as it
// goes does not grow pgrotate's memory without end. A statement forgotten
// and prepared again gets a new name: names are never reused, so a
// connection that still holds the old one is only holding a duplicate,
// which max_prepared_statements evicts like any other.
type stmtRegistry struct {
	mu           sync.Mutex
	names, older map[string]string // this generation's, and the one before
	bytes        int               // of this generation's keys
	// generation and generationBytes bound a generation.
	generation, generationBytes int
	next                        uint64
}

// registryGeneration is far above the statements any app prepares on
// purpose; registryGenerationBytes bounds the text two generations keep
// (generated IN lists run to kilobytes a statement).
const (
	registryGeneration      = 4096
	registryGenerationBytes = 4 << 20
)

func newStmtRegistry() *stmtRegistry {
	return &stmtRegistry{names: make(map[string]string), generation: registryGeneration, generationBytes: registryGenerationBytes}
}

// serverName returns the shared server-side name of a statement, for a
// client whose settings settingsKey names.
func (r *stmtRegistry) serverName(query string, types []uint32, settingsKey string) string {
	key := make([]byte, 0, len(query)+2+4*len(types)+len(settingsKey))
	key = append(key, query...)
	key = append(key, 0)
	for _, t := range types {
		key = binary.BigEndian.AppendUint32(key, t)
	}
	key = append(key, 0)
	key = append(key, settingsKey...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.names[string(key)]; ok {
		return n
	}
	n, ok := r.older[string(key)]
	if !ok {
		r.next++
		n = "pgrotate_" + strconv.FormatUint(r.next, 10)
	}
	if len(r.names) >= r.generation || r.bytes+len(key) > r.generationBytes {
		r.older, r.names, r.bytes = r.names, make(map[string]string), 0
	}
	r.names[string(key)] = n
	r.bytes += len(key)
	return n
}

// clientStmt is one of a client's named statements, as the server knows it.
type clientStmt struct {
	name     string         // the client's name
	parse    pgproto3.Parse // with the server-side name
	mentions mentions       // what scanText found in its text
}

// closedStmtName is what a client's Close of a shared statement is rewritten
// to: closing a statement that does not exist is not an error, so the client
// gets its CloseComplete in order while the shared statement stays for others.
const closedStmtName = "pgrotate_closed"

// cstring reads a NUL-terminated string at the start of b and returns it and
// the rest. ok is false when b has no NUL.
func cstring(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

// appendMessage appends a message of type typ made of parts to dst.
func appendMessage(dst []byte, typ byte, parts ...[]byte) []byte {
	n := 4
	for _, p := range parts {
		n += len(p)
	}
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst
}

// unnamedStmt is the unnamed statement a client made, as the server holds
// it: the body of the Parse that made it, empty when there is none.
// PostgreSQL replaces it at every Parse of the unnamed statement and drops it
// at every simple Query and at a Close of it; both pool modes keep it for a
// client whose next server connection holds another (transaction mode) or
// none (session mode, after a move).
type unnamedStmt []byte

// keep records body, a Parse of the unnamed statement sent to the server.
// The copy reuses the buffer: no allocation once it is large enough.
func (u *unnamedStmt) keep(body []byte) { *u = append((*u)[:0], body...) }

// drop records that the server holds none.
func (u *unnamedStmt) drop() { *u = (*u)[:0] }

// connStmts are the shared statements prepared on one server connection
// (transaction pooling), each with when it was last used. Statements are
// shared by text, so a connection gathers every distinct statement of every
// client that used it; an app that prepares statements it makes up as it
// goes (literals in the text, IN lists of every length) would grow each
// backend's memory without end. Past max_prepared_statements the least
// recently used are deallocated when the connection is given back (evict).
// The lease's holder only.
type connStmts struct {
	used map[string]uint64 // server-side name → tick of its last use
	tick uint64
}

func newConnStmts() connStmts { return connStmts{used: make(map[string]uint64)} }

// use reports whether the connection holds the statement, and if it does,
// records a use of it.
func (s *connStmts) use(name string) bool {
	if _, ok := s.used[name]; !ok {
		return false
	}
	s.tick++
	s.used[name] = s.tick
	return true
}

// add records a statement prepared on the connection.
func (s *connStmts) add(name string) {
	s.tick++
	s.used[name] = s.tick
}

// forget records that the connection does not hold the statement.
func (s *connStmts) forget(name string) { delete(s.used, name) }

// forgetAll records that the connection holds none.
func (s *connStmts) forgetAll() { clear(s.used) }

func (s *connStmts) len() int { return len(s.used) }

// evict forgets the least recently used statements when there are more
// than max (0: no cap) and returns their names, for the server to
// deallocate. It evicts down to an eighth below max, so that a connection
// at the cap costs that round trip once every max/8 new statements rather
// than at every one.
func (s *connStmts) evict(max int) []string {
	if max <= 0 || len(s.used) <= max {
		return nil
	}
	byUse := make([]string, 0, len(s.used))
	for name := range s.used {
		byUse = append(byUse, name)
	}
	slices.SortFunc(byUse, func(a, b string) int { return cmp.Compare(s.used[a], s.used[b]) })
	gone := byUse[:len(byUse)-(max-max/8)]
	for _, name := range gone {
		delete(s.used, name)
	}
	return gone
}
