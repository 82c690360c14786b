package proxy

import (
	"bytes"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The transaction-mode rewrites of client messages. All are called from
// txClient.inspect with mu held and a lease in place; a rewrite leaves the
// replacement in c.scratch.

// onQuery checks a simple Query: the role guard, and DEALLOCATE/DISCARD,
// after which the server connection's prepared statements are unknown.
func (c *txClient) onQuery(body []byte) verdict {
	c.dropUnnamed()
	sql := trimNUL(body)
	m := scanText(sql)
	if c.refusesRole(sql, m) {
		// Nothing of the text runs, so it calls for no cleanup.
		c.scratch = c.guard.refusedQuery(c.scratch[:0])
		return rewrite
	}
	if _, ok := c.deallocates(sql, m); ok {
		c.scratch = appendMessage(c.scratch[:0], 'Q', []byte(deallocateQuery), []byte{0})
		return rewrite
	}
	c.note(m)
	return forward
}

// onCall checks a FunctionCall: the role guard, which refuses set_config
// of the role. Any function may set anything, and a call has no text to
// read: the connection's role and settings are reset before the next
// client (mentions.settings).
func (c *txClient) onCall(body []byte) verdict {
	if c.guard != nil && c.guard.refusesCall(body) {
		countRefusal(c.p.m, c.s.log)
		c.scratch = c.guard.refusedQuery(c.scratch[:0])
		return rewrite
	}
	c.note(mentions{settings: true})
	return forward
}

// note records what a statement run in the lease mentioned: a roles or
// session-state word decides the connection's cleanup (see cleanup). After
// DEALLOCATE or DISCARD, in any protocol (psycopg 3 sends DEALLOCATE ALL
// as an extended-protocol statement, inside the next transaction), the
// connection's statements are unknown: the word may have been only in a
// string. Any statement the lease uses from here on runs as the unnamed
// statement (see injectParse), and the lease's end forgets them all.
func (c *txClient) note(m mentions) {
	c.seen.role = c.seen.role || m.role
	c.seen.session = c.seen.session || m.session
	c.seen.settings = c.seen.settings || m.settings
	if m.forget {
		c.forgetAll = true
		c.unsure = true
	}
}

// refusesRole applies the role guard to statement text, of which scanText
// found m, and counts and logs a refusal.
func (c *txClient) refusesRole(sql []byte, m mentions) bool {
	if c.guard == nil || !c.guard.refuses(sql, m) {
		return false
	}
	countRefusal(c.p.m, c.s.log)
	return true
}

// onParse renames a named statement to its shared server-side name. Every
// Parse forwarded is queued, so each ParseComplete can be matched to it.
func (c *txClient) onParse(body []byte) (verdict, error) {
	name, rest, ok := cstring(body)
	if !ok {
		return forward, nil // malformed: PostgreSQL will say so
	}
	query, _, _ := cstring(rest)
	m := scanText(query)
	if c.refusesRole(query, m) {
		return c.refuseParse(body, len(name) == 0), nil
	}
	if len(name) == 0 { // what drivers run once (a named one stays prepared)
		if stmt, ok := c.deallocates(query, m); ok {
			c.scratch = c.appendDeallocate(c.scratch[:0], stmt)
			return rewrite, nil
		}
	}
	c.note(m)
	if len(name) == 0 {
		c.queueParse(pendingParse{own: true})
		c.keepUnnamed(body, m)
		return forward, nil
	}
	cs := c.register(body, m)
	if cs == nil {
		return forward, nil
	}
	c.scratch = c.appendClientParse(c.scratch[:0], cs)
	return rewrite, nil
}

// refuseParse puts the guard's refusal in place of a refused Parse. A named
// one is renamed and shared like any other statement: under the client's
// own name it would stay on the server connection for the next client to
// collide with. Nothing of the client's text runs, so it calls for no
// cleanup (mentions{}).
func (c *txClient) refuseParse(body []byte, unnamed bool) verdict {
	refusal := c.guard.refusedParse(body)
	if unnamed {
		c.queueParse(pendingParse{own: true})
		c.scratch, _ = refusal.Encode(c.scratch[:0])
		c.keepUnnamed(c.scratch[5:], mentions{})
		return rewrite
	}
	c.scratch = c.appendClientParse(c.scratch[:0], c.registerStmt(*refusal, mentions{}))
	return rewrite
}

// register records the client's named statement in a Parse body, whose
// text scanText found m in; nil if the body is malformed (the server will
// say so).
func (c *txClient) register(body []byte, m mentions) *clientStmt {
	var p pgproto3.Parse
	if err := p.Decode(body); err != nil {
		return nil
	}
	return c.registerStmt(p, m)
}

// registerStmt records the client's named statement p under its shared
// server-side name.
func (c *txClient) registerStmt(p pgproto3.Parse, m mentions) *clientStmt {
	cs := &clientStmt{name: p.Name, parse: p, mentions: m}
	cs.parse.Name = c.p.stmts.serverName(p.Query, p.ParameterOIDs, c.settingsKey)
	c.stmts[cs.name] = cs
	return cs
}

// appendClientParse appends the Parse of a client's statement, whose
// ParseComplete the client awaits.
func (c *txClient) appendClientParse(dst []byte, cs *clientStmt) []byte {
	sc := c.lease.Value()
	if sc.stmts.use(cs.parse.Name) {
		// This connection has the statement already. Parse it as the unnamed
		// statement instead: the client gets its ParseComplete in order, and
		// nothing else changes.
		c.queueParse(pendingParse{stmt: cs})
		c.unnamedHere = false // the client's own is parsed again if it binds it
		dst, _ = (&pgproto3.Parse{Query: cs.parse.Query, ParameterOIDs: cs.parse.ParameterOIDs}).Encode(dst)
		return dst
	}
	sc.stmts.add(cs.parse.Name)
	c.queueParse(pendingParse{server: cs.parse.Name, stmt: cs})
	dst, _ = cs.parse.Encode(dst)
	return dst
}

func (c *txClient) queueParse(p pendingParse) {
	p.sync = c.segment()
	c.parses = append(c.parses, p)
}

// segment numbers the stretch of the lease's messages up to and including
// the next Sync (or Query, or FunctionCall): the unit PostgreSQL skips to
// the end of after an error. Its ReadyForQuery is number segment().
func (c *txClient) segment() int { return c.syncsSent + 1 }

// onBind renames the statement a Bind refers to, preparing it first on a
// connection that lacks it.
func (c *txClient) onBind(body []byte) (verdict, error) {
	portal, rest, ok := cstring(body)
	if !ok {
		return forward, nil
	}
	stmt, params, ok := cstring(rest)
	if ok && len(stmt) == 0 {
		return c.onUnnamed('B', body), nil
	}
	cs := c.lookup(stmt, ok)
	if cs == nil {
		if ok && isSharedName(stmt) {
			c.scratch = appendMessage(c.scratch[:0], 'B', portal, []byte{0}, []byte(closedStmtName), []byte{0}, params)
			return rewrite, nil
		}
		return forward, nil
	}
	// A statement prepared in an earlier transaction has its text read
	// there; what it does, it does again in this one.
	c.note(cs.mentions)
	var target string
	c.scratch, target = c.injectParse(c.scratch[:0], cs)
	c.scratch = appendMessage(c.scratch, 'B', portal, []byte{0}, []byte(target), []byte{0}, params)
	return rewrite, nil
}

// onDescribeOrClose renames the statement of Describe('S') and Close('S').
// A Close of a shared statement becomes a Close of a name that does not
// exist: the client gets its CloseComplete, other clients keep the statement.
func (c *txClient) onDescribeOrClose(typ byte, body []byte) (verdict, error) {
	if len(body) < 2 || body[0] != 'S' {
		return forward, nil
	}
	name, _, ok := cstring(body[1:])
	if ok && len(name) == 0 {
		if typ == 'D' {
			return c.onUnnamed(typ, body), nil
		}
		c.dropUnnamed() // closed: a Bind of it fails
		return forward, nil
	}
	cs := c.lookup(name, ok)
	if cs == nil {
		if ok && isSharedName(name) {
			c.scratch = appendMessage(c.scratch[:0], typ, []byte{'S'}, []byte(closedStmtName), []byte{0})
			return rewrite, nil
		}
		return forward, nil
	}
	c.scratch = c.scratch[:0]
	target := closedStmtName
	if typ == 'C' {
		delete(c.stmts, string(name))
		c.closes[len(c.closes)-1].stmt = cs
	} else {
		c.scratch, target = c.injectParse(c.scratch, cs)
	}
	c.scratch = appendMessage(c.scratch, typ, []byte{'S'}, []byte(target), []byte{0})
	return rewrite, nil
}

// pendingClose is a Close sent to the server and not yet answered: every
// one, so that each CloseComplete can be matched to it.
type pendingClose struct {
	stmt *clientStmt // the client's named statement it closes; nil for any other
	sync int         // the ReadyForQuery number that settles it
}

// settleCloses forgets the Closes that a ReadyForQuery proved skipped: an
// error made the server skip them, so the client's statement stays, as
// on PostgreSQL. Called with mu held.
func (c *txClient) settleCloses() {
	n := 0
	for n < len(c.closes) && c.closes[n].sync <= c.syncsDone {
		if cs := c.closes[n].stmt; cs != nil && c.stmts[cs.name] == nil {
			c.stmts[cs.name] = cs
		}
		n++
	}
	c.closes = dropFront(c.closes, n)
}

// closed records the server's CloseComplete of the oldest pending Close.
func (c *txClient) closed() {
	if len(c.closes) > 0 {
		c.closes = dropFront(c.closes, 1)
	}
}

// keepUnnamed records body, a Parse of the unnamed statement sent on the
// lease whose text scanText found m in, as the client's unnamed statement,
// which the leased connection now holds.
func (c *txClient) keepUnnamed(body []byte, m mentions) {
	c.unnamed.keep(body)
	c.unnamedMentions = m
	c.unnamedHere, c.unnamedSeg = true, c.segment()
}

// dropUnnamed records that the client has no unnamed statement (a simple
// Query or a Close dropped it).
func (c *txClient) dropUnnamed() {
	c.unnamed.drop()
	c.unnamedHere = false
}

// onUnnamed passes on a Bind or Describe of the unnamed statement. The
// client parsed it in an earlier transaction (pgx's describe-exec mode
// parses in one round trip and binds in the next), or on a connection
// whose unnamed statement pgrotate has used since: what the leased
// connection holds is someone else's, so the client's is parsed first. A
// client without one gets a statement that fails, never another client's.
func (c *txClient) onUnnamed(typ byte, body []byte) verdict {
	// Parsed in an earlier transaction, its text was read there; what it
	// does, it does again in this one (as onBind notes a named one's).
	c.note(c.unnamedMentions)
	if c.unnamedHeld() {
		return forward
	}
	parse := c.unnamed
	if len(parse) == 0 {
		parse = noUnnamedParse
	}
	c.queueParse(pendingParse{injected: true})
	c.unnamedHere, c.unnamedSeg = true, c.segment()
	c.scratch = appendMessage(c.scratch[:0], 'P', parse)
	c.scratch = appendMessage(c.scratch, typ, body)
	return rewrite
}

// unnamedHeld reports whether the leased connection's unnamed statement is
// surely the client's: made in this segment (if its Parse was skipped, so
// is whatever uses it), or in one whose ReadyForQuery has come without
// settleParses finding its Parse failed. One made in an earlier segment
// still unanswered may have been skipped after an error, and a Bind of the
// unnamed statement would then run whatever the connection held before,
// maybe another client's.
func (c *txClient) unnamedHeld() bool {
	return c.unnamedHere && (c.unnamedSeg == c.segment() || c.unnamedSeg <= c.syncsDone)
}

// noUnnamedParse is the body of a Parse of the unnamed statement that fails
// as binding a missing one does on PostgreSQL (SQLSTATE 26000).
var noUnnamedParse = func() []byte {
	b, _ := (&pgproto3.Parse{Query: raiseSQL(codeInvalidStatementName, "unnamed prepared statement does not exist")}).Encode(nil)
	return b[5:]
}()

// isSharedName reports whether a statement name the client never prepared
// looks like one of pgrotate's shared server-side names: a client must not
// run, describe or close other clients' statements by guessing it, so such
// a name is replaced by one that never exists (26000, or a harmless Close).
func isSharedName(name []byte) bool {
	return bytes.HasPrefix(name, []byte("pgrotate_"))
}

// lookup finds a client's named statement; nil for the unnamed statement,
// an unknown name or a malformed message, which go to the server unchanged.
func (c *txClient) lookup(name []byte, ok bool) *clientStmt {
	if !ok || len(name) == 0 {
		return nil
	}
	return c.stmts[string(name)]
}

// injectParse makes sure the leased connection holds cs for a Bind or
// Describe, and returns the name they must use. A statement the connection
// lacks is prepared under its shared name. One it may or may not hold (see
// unsure) is parsed as the unnamed statement, which a Parse may always
// replace: a Parse of the shared name would fail if it is there. The
// ParseComplete of either is dropped from the replies.
func (c *txClient) injectParse(dst []byte, cs *clientStmt) ([]byte, string) {
	sc := c.lease.Value()
	switch {
	case !sc.stmts.use(cs.parse.Name):
		sc.stmts.add(cs.parse.Name)
		c.queueParse(pendingParse{server: cs.parse.Name, injected: true})
		dst, _ = cs.parse.Encode(dst)
		return dst, cs.parse.Name
	case c.unsure || c.parsedBefore(cs.parse.Name, cs):
		c.queueParse(pendingParse{injected: true})
		c.unnamedHere = false // the client's own is parsed again if it binds it
		dst, _ = (&pgproto3.Parse{Query: cs.parse.Query, ParameterOIDs: cs.parse.ParameterOIDs}).Encode(dst)
		return dst, ""
	}
	return dst, cs.parse.Name
}

// noteError reads what an error the server sent during the lease says of
// the connection (errors are rare: decoding one costs nothing that
// matters). Called with mu held.
//
// "Cached plan must not change result type", told by its SQLSTATE and the
// routine that raises it (the message may be translated): a migration
// changed a table under a prepared statement (SELECT * after ADD COLUMN),
// see stalePlans.
//
// Insufficient privilege (42501): the session may act as a role other
// than the owner, which the executing roles (NOINHERIT) are. A function of
// the app's own that runs SET ROLE, called by text that says nothing of
// roles, gets past the role guard, and in transaction mode the next
// clients of the connection would act as that role too; their statements
// fail on the owner's tables, and the first such failure has the
// connection's role reset before anyone else's transaction. (The guard's
// own refusals are 42501 too: they cost that reset, once.)
func (c *txClient) noteError(sc *serverConn, body []byte) {
	var e pgproto3.ErrorResponse
	if e.Decode(body) != nil {
		return
	}
	logServerFatal(c.s.log, sc, &e)
	switch {
	case e.Code == codeFeatureNotSupported && e.Routine == "RevalidateCachedQuery":
		c.stalePlans = true
	case e.Code == codeInsufficientPrivilege:
		c.seen.role = true
	}
}

// parsedBefore reports whether a Parse of the server-side name that
// pgrotate sent for its own ends (not cs's, the client's own Parse of it)
// waits for its answer in an earlier segment of the lease than the current
// one: if an error made the server skip it, the statement is not there,
// and the client must not find it missing. Where the client's own Parse is
// the one waiting, the statement is used by its name: if the server skipped
// that Parse, the Bind fails (26000), as on PostgreSQL.
func (c *txClient) parsedBefore(server string, cs *clientStmt) bool {
	for _, p := range c.parses {
		if p.server == server && p.sync < c.segment() && p.stmt != cs {
			return true
		}
	}
	return false
}

func trimNUL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == 0 {
		return b[:n-1]
	}
	return b
}

// txCleanup is what a transaction-mode server connection needs before
// another client's transaction, after what the last one's text mentioned
// (scanText): PostgreSQL reports none of it on the wire. A set of kinds,
// run together in one round trip.
type txCleanup uint8

const (
	cleanRole    txCleanup = 1 << iota // roles were mentioned: RESET ROLE
	cleanSession                       // session state may be left: sessionCleanup
	// cleanStatements: DEALLOCATE or DISCARD was mentioned. pgrotate then
	// forgets the connection's statements, and DEALLOCATE ALL makes the
	// server forget them too, where the words were only in a string.
	cleanStatements
	// cleanEvict: the connection holds more shared statements than
	// max_prepared_statements; the least recently used are deallocated
	// (see connStmts.evict).
	cleanEvict

	cleanNone txCleanup = 0
)

// sessionCleanup undoes, in one round trip, what a transaction can leave
// in a server session for whoever uses it next: the owner role, LISTEN,
// session-level advisory locks, WITH HOLD cursors, temporary tables and
// statements prepared with SQL PREPARE. Unlike DISCARD ALL it keeps the
// settings and the statements prepared through the protocol, which
// pgrotate tracks per connection. (It needs PL/pgSQL, there by default;
// where it is missing the cleanup fails and the connection is closed.)
const sessionCleanup = "RESET ROLE; UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all(); CLOSE ALL; DISCARD TEMP; " +
	"DO $pgrotate$DECLARE s text; BEGIN FOR s IN SELECT name FROM pg_catalog.pg_prepared_statements WHERE from_sql " +
	"LOOP EXECUTE pg_catalog.format('DEALLOCATE %I', s); END LOOP; END$pgrotate$"

// cleanupKinds are the kinds of cleanup in the order they run: each one's
// bit, its label in pgrotate_transaction_cleanups_total and its SQL (the
// evicted statements' is made for the statements, see query).
var cleanupKinds = []struct {
	bit        txCleanup
	label, sql string
}{
	{cleanSession, "session_state", sessionCleanup},
	{cleanRole, "role", "RESET ROLE"},
	{cleanEvict, "statement_cap", ""},
	{cleanStatements, "statements", "DEALLOCATE ALL"},
}

// each calls f with the index in cleanupKinds of every kind the cleanup
// runs. The session-state cleanup includes RESET ROLE, so a role cleanup
// beside it does not run (nor count) again.
func (k txCleanup) each(f func(i int)) {
	if k&cleanSession != 0 {
		k &^= cleanRole
	}
	for i, c := range cleanupKinds {
		if k&c.bit != 0 {
			f(i)
		}
	}
}

// query is the cleanup's SQL; evicted are the server-side names of the
// statements cleanEvict deallocates (pgrotate's own: no quoting needed).
func (k txCleanup) query(evicted []string) string {
	var parts []string
	k.each(func(i int) {
		if cleanupKinds[i].bit != cleanEvict {
			parts = append(parts, cleanupKinds[i].sql)
			return
		}
		for _, name := range evicted {
			parts = append(parts, "DEALLOCATE "+name)
		}
	})
	return strings.Join(parts, "; ")
}

// kinds names the cleanup's kinds, as pgrotate_transaction_cleanups_total
// labels them.
func (k txCleanup) kinds() []string {
	var names []string
	k.each(func(i int) { names = append(names, cleanupKinds[i].label) })
	return names
}

// cleanup is what the lease's statements call for. Called with mu held.
func (c *txClient) cleanup() txCleanup {
	k := cleanNone
	if c.seen.session || c.tempPath {
		k |= cleanSession
	}
	if c.seen.role {
		k |= cleanRole
	}
	if c.forgetAll || c.stalePlans {
		k |= cleanStatements
	}
	return k
}

// A client's DEALLOCATE of one of its protocol-level statements (psycopg 3
// evicting one from its cache, Rails' statement pool) names it by the
// client's name, which the server never saw: pgrotate forgets the client's
// statement and runs a DEALLOCATE of a statement of its own instead, for
// the reply the client awaits. The shared statement stays for others.
// Anything else that says DEALLOCATE goes to the server as it is.

// deallocateName is the statement pgrotate prepares just to deallocate it.
const deallocateName = "pgrotate_deallocate"

// deallocateQuery is a client's DEALLOCATE as a simple query: PREPARE and
// DEALLOCATE in one text. (A Parse ahead of a simple query would be skipped
// in a failed transaction, the query with it, and leave the client waiting.)
const deallocateQuery = "PREPARE " + deallocateName + " AS SELECT 1; DEALLOCATE " + deallocateName

// deallocates reports whether sql, of which scanText found m, is a
// DEALLOCATE of one of the client's statements, which it names, and forgets
// that statement if it is. Text without the word costs nothing more.
func (c *txClient) deallocates(sql []byte, m mentions) (string, bool) {
	if !m.forget {
		return "", false
	}
	name, ok := deallocName(sql)
	if !ok || c.stmts[name] == nil {
		return "", false
	}
	delete(c.stmts, name)
	return name, true
}

// appendDeallocate appends what replaces a client's Parse of the unnamed
// statement whose text deallocates its statement name: a Parse of
// pgrotate's own statement (its ParseComplete dropped), and the client's
// Parse with DEALLOCATE of that one. Run again later (a Bind of the unnamed
// statement in another transaction) it fails as on PostgreSQL, where the
// statement is gone by then.
func (c *txClient) appendDeallocate(dst []byte, name string) []byte {
	c.queueParse(pendingParse{injected: true})
	dst, _ = (&pgproto3.Parse{Name: deallocateName, Query: "SELECT 1"}).Encode(dst)
	c.queueParse(pendingParse{own: true})
	start := len(dst)
	dst, _ = (&pgproto3.Parse{Query: "DEALLOCATE " + deallocateName}).Encode(dst)
	c.keepUnnamed(dst[start+5:], mentions{})
	gone, _ := (&pgproto3.Parse{Query: raiseSQL(codeInvalidStatementName, "prepared statement \""+name+"\" does not exist")}).Encode(nil)
	c.unnamed.keep(gone[5:])
	return dst
}

// deallocName returns the statement name of sql if sql is exactly one
// DEALLOCATE [PREPARE] name, with an unquoted name folded to lower case as
// PostgreSQL folds it. DEALLOCATE ALL is not one.
func deallocName(sql []byte) (string, bool) {
	w, s := nextWord(trimNUL(sql))
	if !wordIs(w, "deallocate") {
		return "", false
	}
	if w, rest := nextWord(s); wordIs(w, "prepare") {
		s = rest
	}
	name, rest, ok := identifier(skipSpace(s))
	if !ok {
		return "", false
	}
	rest = skipSpace(rest)
	if len(rest) > 0 && rest[0] == ';' {
		rest = skipSpace(rest[1:])
	}
	if len(rest) != 0 {
		return "", false
	}
	return name, true
}

// identifier reads an SQL identifier at the start of s: quoted (with ""
// for a quote) or plain, folded to lower case and not ALL.
func identifier(s []byte) (name string, rest []byte, ok bool) {
	if len(s) > 0 && s[0] == '"' {
		var b []byte
		for i := 1; i < len(s); i++ {
			switch {
			case s[i] != '"':
				b = append(b, s[i])
			case i+1 < len(s) && s[i+1] == '"':
				b = append(b, '"')
				i++
			default:
				return string(b), s[i+1:], len(b) > 0
			}
		}
		return "", nil, false
	}
	n := 0
	for n < len(s) && identChar(s[n]) {
		n++
	}
	word := strings.ToLower(string(s[:n]))
	return word, s[n:], n > 0 && word != "all"
}
