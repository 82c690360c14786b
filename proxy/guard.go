package proxy

import (
	"bytes"
	"encoding/binary"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The role guard keeps sessions acting as the owner role (DESIGN.md §2 fact 4).
// PostgreSQL never reports the role GUC on the wire, so the guard reads
// statement text: a cheap substring test first, then a few regular expressions
// on the rare text that mentions a role at all. It is no SQL parser and does
// not pretend to be: NOINHERIT executing roles, the RESET ROLE of connections
// whose text mentioned roles, and `pgrotate check` are the other layers.

// guardMessage is what a client is told when the guard refuses a statement.
const guardMessage = "changing the role is not allowed: sessions through pgrotate always act as the database's owner role"

// White space in the guard's patterns is [\s\v]: a vertical tab too, which
// Go's \s leaves out. Where PostgreSQL does not take it for white space,
// SET\vROLE is a syntax error and refusing it costs nothing.
var (
	// setRole matches SET [SESSION|LOCAL] ROLE <target> (also as a
	// function's SET clause, and with "role" quoted: setting names are
	// case-insensitive), capturing the target.
	setRole = regexp.MustCompile(`(?is)` + setName(`role\b`, `"role"`) + `[\s\v]*(?:to\b|=)?[\s\v]*("(?:[^"]|"")*"|[^\s\v;]+)`)
	// setAuthorization matches SET [SESSION|LOCAL] SESSION AUTHORIZATION x
	// and SET session_authorization TO x, capturing x.
	setAuthorization = regexp.MustCompile(`(?is)(?:` + setName(`session[\s\v]+authorization\b`, "") + `|` +
		setName(`session_authorization\b`, `"session_authorization"`) + `[\s\v]*(?:to\b|=))[\s\v]*([^\s\v;]+)`)
	// setConfigCall matches the start of a set_config call, quoted or
	// schema-qualified, up to its parenthesis.
	setConfigCall = regexp.MustCompile(`(?i)"?\bset_config"?[\s\v]*\(`)
	// setConfigName matches set_config as a word, called or not.
	setConfigName = regexp.MustCompile(`(?i)\bset_config\b`)
)

// setName is the pattern of SET [SESSION|LOCAL] and a setting's name,
// plain or quoted: white space between the words, none needed next to a
// quoted name, which PostgreSQL's lexer ends a word at (SET"role"=x).
// quoted is "" for words that have no quoted form.
func setName(plain, quoted string) string {
	pattern := `\bset(?:[\s\v]+(?:(?:session|local)[\s\v]+)?` + plain
	if quoted != "" {
		pattern += `|[\s\v]*(?:(?:session|local)[\s\v]*)?` + quoted
	}
	return pattern + `)`
}

// roleGuard checks statement text against the owner role of one database.
type roleGuard struct {
	owner string
	// refusal is the Query that replaces a refused one: it fails on the
	// server with SQLSTATE 42501, so the client sees the error in order,
	// followed by the ReadyForQuery PostgreSQL would send.
	refusal string
}

func newRoleGuard(owner string) *roleGuard {
	return &roleGuard{owner: owner, refusal: raiseSQL(codeInsufficientPrivilege, guardMessage)}
}

// raiseSQL is a statement that fails on the server with SQLSTATE code and
// msg: what pgrotate puts in place of a statement that must fail, so the
// client's error comes in order, as PostgreSQL would send it. A DO block
// needs PL/pgSQL, there by default.
func raiseSQL(code, msg string) string {
	return "DO $pgrotate$BEGIN RAISE EXCEPTION '" + strings.ReplaceAll(msg, "'", "''") +
		"' USING ERRCODE = '" + code + "'; END$pgrotate$"
}

// mentions is what scanText found in statement text.
type mentions struct {
	// role: "role" or "authorization", or a Unicode-escaped name, the
	// cheap first test of the guard (refuses); text with it is also reason
	// to RESET ROLE a connection before reuse.
	role bool
	// forget: "deallocate" or "discard", after which the server
	// connection's prepared statements are unknown.
	forget bool
	// session: a word of a statement that leaves state in the server
	// session after its transaction (LISTEN, a temporary table, a WITH
	// HOLD cursor, a session-level advisory lock, SQL PREPARE). In
	// transaction mode the connection is cleaned (sessionCleanup) before
	// another client gets it.
	session bool
	// settings: a statement that changes or resets settings for the
	// session (SET or RESET opening a statement, not SET LOCAL or SET
	// TRANSACTION; set_config; a DO block). PostgreSQL reports only some
	// parameters on the wire, so in transaction mode the connection is
	// brought back to the owner role and the next client's settings before
	// its next transaction.
	settings bool
}

// scanText looks for every word the transaction relay cares about in one
// pass of byte compares: it runs on every statement, and app statements
// run to kilobytes. Words that are common inside longer ones (hold in
// threshold, temp in temperature, discard in discarded) must stand alone; a mention in a string
// or a comment counts too, which only costs a cleanup round trip.
func scanText(sql []byte) (m mentions) {
	m.settings = mentionsSettings(sql)
	m.role = hasUnicodeEscape(sql, `"'`) || hasEscapedCall(sql)
	for i := 0; i+4 <= len(sql); i++ {
		if !wordStart[sql[i]] {
			continue // most bytes get no further
		}
		rest := sql[i+1:]
		// The second letter settles most candidates before a call.
		switch sql[i] | 0x20 {
		case 'r':
			m.role = m.role || rest[0]|0x20 == 'o' && hasPrefixFold(rest, "ole")
		case 'a':
			switch rest[0] | 0x20 {
			case 'u':
				m.role = m.role || hasPrefixFold(rest, "uthorization")
			case 'd':
				m.session = m.session || hasPrefixFold(rest, "dvisory") && !isXact(sql[i+8:])
			}
		case 'd':
			switch rest[0] | 0x20 {
			case 'e':
				m.forget = m.forget || wordAt(sql, i, "eallocate", true)
			case 'i':
				m.forget = m.forget || wordAt(sql, i, "iscard", true)
			}
		case 'l':
			m.session = m.session || rest[0]|0x20 == 'i' && wordAt(sql, i, "isten", false)
		case 't':
			m.session = m.session || rest[0]|0x20 == 'e' && (wordAt(sql, i, "emp", false) || hasPrefixFold(rest, "emporary"))
		case 'h':
			m.session = m.session || rest[0]|0x20 == 'o' && wordAt(sql, i, "old", true)
		case 'p':
			m.session = m.session || rest[0]|0x20 == 'r' && wordAt(sql, i, "repare", true)
			m.settings = m.settings || rest[0]|0x20 == 'g' && len(rest) > 1 && rest[1] == '_' &&
				hasPrefixFold(rest[2:], "settings") && updatesPgSettings(sql[:i])
		}
		if m.role && m.forget && m.session && m.settings {
			return m
		}
	}
	return m
}

// hasEscapedCall reports whether sql calls set_config, or runs dynamic SQL
// (EXECUTE), in text with a backslash in it: a string with escapes may
// spell role where no word test reads it (set_config(E'\x72ole', …),
// EXECUTE E'SET \x52OLE x'), as U& escapes may (hasUnicodeEscape).
func hasEscapedCall(sql []byte) bool {
	return bytes.IndexByte(sql, '\\') >= 0 && (containsSetConfig(sql) || containsWord(sql, "execute"))
}

// updatesPgSettings reports whether the text before a mention of
// pg_settings ends with UPDATE [pg_catalog.]: an UPDATE of pg_settings
// sets what it names (its rule calls set_config); reading it changes
// nothing.
func updatesPgSettings(before []byte) bool {
	b := bytes.TrimRight(before, " \t\n\r\f\v")
	if n := len(b); n >= 11 && asciiLower(string(b[n-11:])) == "pg_catalog." {
		b = bytes.TrimRight(b[:n-11], " \t\n\r\f\v")
	}
	n := len(b)
	return n >= 6 && asciiLower(string(b[n-6:])) == "update" && (n == 6 || !identChar(b[n-7]))
}

// wordStart marks the first letters of the words scanText looks for.
var wordStart = func() (t [256]bool) {
	for _, c := range "radlthp" {
		t[c], t[c-'a'+'A'] = true, true
	}
	return t
}()

// wordAt reports whether the word whose first letter is at sql[i] (tail is
// the rest, lowercase) ends there, and, if alone, also starts there: pg_temp
// and unlisten count, temperature and threshold do not.
func wordAt(sql []byte, i int, tail string, alone bool) bool {
	end := i + 1 + len(tail)
	if !hasPrefixFold(sql[i+1:], tail) || end < len(sql) && identChar(sql[end]) {
		return false
	}
	return !alone || i == 0 || !identChar(sql[i-1])
}

// hasUnicodeEscape reports whether sql holds a name or string written with
// Unicode escapes, U& before one of quotes (U&"\0072ole", U&'\0072ole'),
// which can spell "role" without the word: the role guard reads such
// text, and refuses a name so written wherever it stands (a setting's, a
// function's, an aggregate's state function's): no app writes one. One
// vector search finds the rare ampersands.
func hasUnicodeEscape(sql []byte, quotes string) bool {
	for i := 0; ; i++ {
		j := bytes.IndexByte(sql[i:], '&')
		if j < 0 {
			return false
		}
		i += j
		if i > 0 && i+1 < len(sql) && sql[i-1]|0x20 == 'u' && strings.IndexByte(quotes, sql[i+1]) >= 0 {
			return true
		}
	}
}

// mentionsSettings reports whether sql changes or resets settings for the
// session (mentions.settings): a statement of it opens with SET or RESET
// (setsSession), or it calls set_config. It is no part of scanText's byte
// loop, where every underscore of a snake_case name cost a table hit and a
// switch (a kilobyte of SELECT text took half as long again): vector
// searches find the few semicolons and underscores there are.
func mentionsSettings(sql []byte) bool {
	for s := sql; ; {
		if setsSession(s) {
			return true
		}
		i := bytes.IndexByte(s, ';')
		if i < 0 {
			break
		}
		s = s[i+1:]
	}
	return containsSetConfig(sql)
}

// containsSetConfig reports whether sql calls set_config, in any case:
// each underscore is found by a vector search, and only those are looked
// at.
func containsSetConfig(sql []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(sql[i:], '_')
		if j < 0 {
			return false
		}
		i += j
		if i >= 3 && hasPrefixFold(sql[i-3:], "set") && hasPrefixFold(sql[i+1:], "config") &&
			(i == 3 || !identChar(sql[i-4])) && (i+7 == len(sql) || !identChar(sql[i+7])) {
			return true
		}
		i++
	}
}

// setsSession reports whether the statement at the start of sql (after
// white space) is a SET that lasts beyond its transaction (not SET LOCAL,
// not SET TRANSACTION), a RESET, or a DO block, whose dynamic SQL may set
// anything. Only a statement's first word counts: UPDATE has a SET of its
// own. mentionsSettings asks at the text's start and after every semicolon.
func setsSession(sql []byte) bool {
	sql = skipSpace(sql)
	if len(sql) == 0 || sql[0]|0x20 != 's' && sql[0]|0x20 != 'r' && sql[0]|0x20 != 'd' {
		return false // most statements: SELECT and DELETE are the ones left to read
	}
	w, rest := nextWord(sql)
	switch {
	case wordIs(w, "reset") || wordIs(w, "do"):
		return true
	case !wordIs(w, "set"):
		return false
	}
	next, _ := nextWord(rest)
	return !wordIs(next, "local") && !wordIs(next, "transaction")
}

// nextWord returns the identifier characters that follow white space at
// the start of s, and what follows them.
func nextWord(s []byte) (w, rest []byte) {
	s = skipSpace(s)
	n := 0
	for n < len(s) && identChar(s[n]) {
		n++
	}
	return s[:n], s[n:]
}

// skipSpace drops the white space and comments at the start of s, as
// PostgreSQL's lexer does: -- to the end of the line, and /* */, which
// nests. A comment in front of a statement is common (sqlcommenter,
// marginalia, query tags of tracing libraries); read as the statement's
// first word, it hid a SET or RESET, and the setting outlived the
// client's transaction on a connection the next client got.
func skipSpace(s []byte) []byte {
	for len(s) > 0 {
		switch {
		case s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r' || s[0] == '\f' || s[0] == '\v':
			s = s[1:]
		case len(s) > 1 && s[0] == '-' && s[1] == '-':
			i := bytes.IndexAny(s, "\n\r")
			if i < 0 {
				return nil
			}
			s = s[i:]
		case len(s) > 1 && s[0] == '/' && s[1] == '*':
			s = skipBlockComment(s[2:])
		default:
			return s
		}
	}
	return s
}

// skipBlockComment returns what follows the block comment whose opening
// /* was just before s: comments nest, /* a /* b */ c */ is one. An
// unterminated comment runs to the end of the text.
func skipBlockComment(s []byte) []byte {
	for depth := 1; depth > 0; {
		i := bytes.IndexByte(s, '*')
		j := bytes.Index(s, []byte("/*"))
		switch {
		case j >= 0 && (i < 0 || j < i):
			depth++
			s = s[j+2:]
		case i < 0:
			return nil
		case i+1 < len(s) && s[i+1] == '/':
			depth--
			s = s[i+2:]
		default:
			s = s[i+1:]
		}
	}
	return s
}

// wordIs reports whether w is word (lowercase), ignoring case.
func wordIs(w []byte, word string) bool { return len(w) == len(word) && hasPrefixFold(w, word) }

// isXact reports whether what follows "advisory" makes a transaction-level
// lock function (pg_advisory_xact_lock), released at the transaction's end.
func isXact(s []byte) bool { return len(s) > 0 && s[0] == '_' && hasPrefixFold(s[1:], "xact") }

// identChar reports whether b can be part of an SQL identifier.
func identChar(b byte) bool {
	c := b | 0x20
	return c >= 'a' && c <= 'z' || b >= '0' && b <= '9' || b == '_' || b == '$' || b >= 0x80
}

// hasPrefixFold reports whether s begins with the lowercase ASCII word,
// ignoring case; the word must be letters only.
func hasPrefixFold(s []byte, word string) bool {
	if len(s) < len(word) {
		return false
	}
	for i := 0; i < len(word); i++ {
		if s[i]|0x20 != word[i] {
			return false
		}
	}
	return true
}

// refuses reports whether sql, of which scanText found m, tries to change
// the role. SET ROLE to the owner itself is allowed: apps that used to SET
// ROLE on connect keep working. Small enough to inline: most text does not
// mention roles, and costs no call.
func (g *roleGuard) refuses(sql []byte, m mentions) bool { return m.role && g.changesRole(sql) }

// changesRole is refuses for text that mentions roles, read each way
// readings gives: a text that hides a role change from one reading shows
// it to another.
func (g *roleGuard) changesRole(sql []byte) bool {
	r := readText(sql)
	for _, text := range r.all {
		if g.changesRoleIn(text, r) {
			return true
		}
	}
	return false
}

// changesRoleIn is changesRole for one reading of the text. An UPDATE's
// SET of a column named role (users.role, in many apps) is no role change
// (see textReadings.updates).
func (g *roleGuard) changesRoleIn(sql []byte, r textReadings) bool {
	for _, m := range setRole.FindAllSubmatchIndex(sql, -1) {
		target := sql[m[2]:m[3]]
		if (!g.isOwner(string(target)) || continued(target, sql[m[3]:])) && !r.updates(m[0]) {
			return true
		}
	}
	for _, m := range setAuthorization.FindAllSubmatchIndex(sql, -1) {
		if !strings.EqualFold(string(sql[m[2]:m[3]]), "default") && !r.updates(m[0]) {
			return true
		}
	}
	return hasUnicodeEscape(sql, `"`) || escapedExecute(sql) || setsConfigRole(sql)
}

// continued reports whether the string literal target goes on in after: a
// string on another line continues it ('bookstore_owner'
// '_ro' is one name).
func continued(target, after []byte) bool {
	if len(target) == 0 || target[0] != '\'' {
		return false
	}
	j := bytes.IndexByte(after, '\'')
	return j >= 0 && continuesString(after[:j])
}

// escapedExecute reports whether sql runs dynamic SQL (EXECUTE) in text
// that has escapes (a backslash, a U&-escaped string), which may spell a
// role change in a string no word test reads (EXECUTE E'SET \x52OLE x').
func escapedExecute(sql []byte) bool {
	return (bytes.IndexByte(sql, '\\') >= 0 || hasUnicodeEscape(sql, `'`)) && containsWord(sql, "execute")
}

// containsWord reports whether sql holds word (lower case letters) as a
// whole word, ASCII case folded. No allocation: scanText calls it.
func containsWord(sql []byte, word string) bool {
	for i := 0; i+len(word) <= len(sql); i++ {
		if sql[i]|0x20 == word[0] && hasPrefixFold(sql[i:], word) &&
			(i == 0 || !identChar(sql[i-1])) && (i+len(word) == len(sql) || !identChar(sql[i+len(word)])) {
			return true
		}
	}
	return false
}

// updateSet matches the end of the text before an UPDATE's SET, from
// what comes before the UPDATE: UPDATE [ONLY] table [*] [[AS] alias] at a
// statement's start (the text's, after a semicolon, a parenthesis or a
// CTE's closing one, a dollar quote's opening tag where a function's body
// starts, or the words BEGIN, THEN, ELSE, LOOP in PL/pgSQL), or the bare
// UPDATE of ON CONFLICT … DO UPDATE and MERGE … THEN UPDATE. UPDATE is no
// reserved word: a function may be named update (ALTER FUNCTION update SET
// role = …), so what precedes it counts, as whole words (asupdate and
// f$update are names).
var updateSet = regexp.MustCompile(`(?s)(?:` + statementStart + `|(?:` + statementStart + `|` + notInName +
	`)(?:begin|then|else|loop|as|explain|analy[sz]e|verbose)[\s\v]+)update(?:[\s\v]+(?:only[\s\v]+)?` +
	sqlName + `(?:[\s\v]*\.[\s\v]*` + sqlName + `)*[\s\v]*\*?(?:[\s\v]+(?:as[\s\v]+)?` + sqlName + `)?)?[\s\v]+$` +
	`|` + notInName + `(?:do|then)[\s\v]+update[\s\v]+$`)

// notInName matches where a word starts that is no part of a longer name:
// the text's start, or a byte no identifier holds (é$$update and aſupdate
// are names to PostgreSQL). updateSet reads ASCII-folded text, case
// sensitively: Go's case folding would take ſ for s.
const notInName = `(?:^|[^\w$\x{80}-\x{10FFFF}])`

// statementStart matches where a statement may start: the text's start, a
// semicolon, a parenthesis, or a dollar quote's opening tag.
const statementStart = `(?:^|[;()]|` + notInName + `\$(?:[a-z_][a-z_0-9]*)?\$)[\s\v]*`

// sqlName matches an identifier, plain (letters, any non-ASCII ones too)
// or quoted. A dollar sign, which PostgreSQL allows after an identifier's
// first letter, is left out: a dollar quote's closing tag after "update x"
// must not pass for a name.
const sqlName = `(?:"(?:[^"]|"")*"|[\w\x{80}-\x{10FFFF}]+)`

// updatesColumn reports whether the SET that follows before is an UPDATE's.
func updatesColumn(before []byte) bool {
	// The statement's start is enough to look at, and bounds the search.
	if i := bytes.LastIndexByte(before, ';'); i >= 0 {
		before = before[i:]
	}
	return updateSet.Match([]byte(asciiLower(string(before))))
}

// textReadings are the ways the guard reads a text: as it is (where a SET
// ROLE written plainly stands in any case), and without its comments, as
// PostgreSQL's lexer takes them out (SET/**/ROLE is SET ROLE). Where a
// comment starts depends on where strings end, so they are taken out four
// ways: as the lexer does with standard_conforming_strings on, and off (a
// client may turn it off: a backslash then escapes a quote); following
// dollar quotes into the bodies of functions and DO blocks, whose
// statements run too; and into every string, which EXECUTE runs. Every
// reading has the text's length: a position means the same in all.
type textReadings struct {
	all [][]byte
	// exempting are the readings that tell an UPDATE's SET (see updates):
	// every reading but the text as it is. A text without comments is its
	// own only reading.
	exempting [][]byte
}

func readText(sql []byte) textReadings {
	if !bytes.Contains(sql, []byte("--")) && !bytes.Contains(sql, []byte("/*")) {
		return textReadings{all: [][]byte{sql}, exempting: [][]byte{sql}}
	}
	r := textReadings{exempting: [][]byte{
		withoutComments(sql, lexed),
		withoutComments(sql, lexed|backslashes),
		withoutComments(sql, lexed|intoDollars),
		withoutComments(sql, lexed|intoDollars|backslashes),
		withoutComments(sql, 0),
	}}
	r.all = append([][]byte{sql}, r.exempting...)
	return r
}

// updates reports whether the SET at position at is an UPDATE's, read
// without comments (a query tag or sqlc's name line may come first): in
// every reading, whichever way the client's standard_conforming_strings
// and the dollar quotes make strings and comments end, and with every
// comment marker taken for one, inside strings too (a function body in
// quotes is lexed again when it runs). Where the readings disagree, one of
// them may be how PostgreSQL reads the text, and the SET is refused: a text
// that shows an UPDATE to one reading only is made to hide a SET ROLE (a
// dollar quote or a backslash ending a string early turns the semicolon
// before it into a comment; a comment in a body hides it from the body's
// lexer). A comment marker in a string before an UPDATE's SET of a role
// column, in the same statement, costs a refusal.
func (r textReadings) updates(at int) bool {
	for _, text := range r.exempting {
		if !updatesColumn(text[:at]) {
			return false
		}
	}
	return true
}

// commentReading says how withoutComments finds where strings end.
type commentReading uint8

const (
	// lexed: strings and quoted names are kept whole, comment markers in
	// them are none; else every marker starts a comment.
	lexed commentReading = 1 << iota
	// backslashes: a backslash escapes the next byte in every string, not
	// only in E'…' ones.
	backslashes
	// intoDollars: dollar-quoted text is read as statements, not kept.
	intoDollars
)

// setsConfigRole reports whether sql calls set_config with a first
// argument that names role or session_authorization, or that is not a
// plain string literal at all (lower('ROLE'), 'ro' || 'le', $1): in text
// that mentions roles, a setting name computed at run time is refused
// rather than guessed at.
//
// set_config named without a call (an aggregate's sfunc = set_config, its
// initcond the name) is refused too in such text: it runs later, by text
// that need not mention roles.
func setsConfigRole(sql []byte) bool {
	calls := setConfigCall.FindAllIndex(sql, -1)
	if len(calls) != len(setConfigName.FindAllIndex(sql, -1)) {
		return true
	}
	for _, loc := range calls {
		name, ok := literalArgument(sql[loc[1]:])
		if !ok || isRoleSetting(string(name)) {
			return true
		}
	}
	return false
}

// literalArgument reads the first argument of a call whose parenthesis was
// just passed: a string literal ('…' with doubled quotes inside, E'…',
// $tag$…$tag$) without a backslash (an escape, or with
// standard_conforming_strings off the end of a different string), maybe
// cast to text or in parentheses, followed by a comma. ok is false for
// anything else: a cast to another type may change the value ('role
// '::bpchar is role, 'rolex'::char(4) too).
func literalArgument(s []byte) (value []byte, ok bool) {
	s = skipSpace(s)
	for len(s) > 0 && s[0] == '(' {
		s = skipSpace(s[1:])
	}
	value, s, ok = stringLiteral(s)
	if !ok || bytes.IndexByte(value, '\\') >= 0 {
		return nil, false
	}
	if s, ok = skipTextCasts(skipSpace(s)); !ok {
		return nil, false
	}
	for len(s) > 0 && s[0] == ')' {
		if s, ok = skipTextCasts(skipSpace(s[1:])); !ok {
			return nil, false
		}
	}
	return value, len(s) > 0 && s[0] == ','
}

// textCast matches a cast to text, which leaves a string as it is.
var textCast = regexp.MustCompile(`(?i)^::[\s\v]*(?:pg_catalog[\s\v]*\.[\s\v]*)?(?:text|"text")\b`)

// skipTextCasts drops the casts to text (::text, :: pg_catalog.text) at the
// start of s; ok is false if another cast is there.
func skipTextCasts(s []byte) (rest []byte, ok bool) {
	for bytes.HasPrefix(s, []byte("::")) {
		loc := textCast.FindIndex(s)
		if loc == nil {
			return nil, false
		}
		s = skipSpace(s[loc[1]:])
	}
	return s, true
}

// stringLiteral reads the string literal at the start of s: its value and
// what follows it.
func stringLiteral(s []byte) (value, rest []byte, ok bool) {
	switch {
	case len(s) > 1 && s[0]|0x20 == 'e' && s[1] == '\'':
		return quotedLiteral(s[1:]) // one with a backslash is refused
	case len(s) > 0 && s[0] == '\'':
		return quotedLiteral(s)
	case dollarTag(s) != nil:
		tag := dollarTag(s)
		body := s[len(tag):]
		i := bytes.Index(body, tag)
		if i < 0 {
			return nil, nil, false
		}
		return body[:i], body[i+len(tag):], true
	}
	return nil, nil, false
}

// quotedLiteral reads the '…' literal at the start of s, a doubled quote
// standing for one in it.
func quotedLiteral(s []byte) (value, rest []byte, ok bool) {
	var v []byte
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			v = append(v, s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			v = append(v, '\'')
			i++
			continue
		}
		return v, s[i+1:], true
	}
	return nil, nil, false
}

// withoutComments is sql with each comment replaced by spaces, strings
// read as how says (see commentReading). An E'…' string's backslash
// escapes are followed in every lexed reading.
func withoutComments(sql []byte, how commentReading) []byte {
	out := make([]byte, 0, len(sql))
	lex := how&lexed != 0
	// eString: the last string read was an E'…' one, its end at lastEnd:
	// a string that continues it on another line is one too.
	eString, lastEnd := false, 0
	for i := 0; i < len(sql); {
		j := i + 1
		switch c := sql[i]; {
		case lex && c == '\'':
			// A quote right after a string's closing one is a doubled
			// quote inside it: the string goes on as it was.
			eString = how&backslashes != 0 || i > 0 && sql[i-1]|0x20 == 'e' && (i == 1 || !identChar(sql[i-2])) ||
				eString && (i == lastEnd || continuesString(sql[lastEnd:i]))
			j = quotedEnd(sql, i, eString)
			lastEnd = j
		case lex && c == '"':
			j = quotedEnd(sql, i, false)
		case lex && c == '$' && how&intoDollars == 0 && (i == 0 || !identChar(sql[i-1])):
			j = dollarQuotedEnd(sql, i)
		case bytes.HasPrefix(sql[i:], []byte("--")):
			// It ends at a newline or a carriage return, as PostgreSQL's.
			j = len(sql)
			if k := bytes.IndexAny(sql[i:], "\n\r"); k >= 0 {
				j = i + k
			}
			out = appendSpaces(out, j-i)
			i = j
			continue
		case bytes.HasPrefix(sql[i:], []byte("/*")):
			j = blockCommentEnd(sql, i)
			out = appendSpaces(out, j-i)
			i = j
			continue
		}
		out = append(out, sql[i:j]...)
		i = j
	}
	return out
}

// appendSpaces appends n spaces to b: a comment's place, kept so that a
// position in a reading is the same in the text.
func appendSpaces(b []byte, n int) []byte {
	for range n {
		b = append(b, ' ')
	}
	return b
}

// continuesString reports whether between, the text between two quoted
// strings, makes the second continue the first: white space and -- comments
// with a newline in them (PostgreSQL's 'a'
// 'b' is 'ab').
func continuesString(between []byte) bool {
	newline := false
	for {
		rest := skipSpace(between)
		newline = newline || bytes.ContainsAny(between[:len(between)-len(rest)], "\n\r")
		if !bytes.HasPrefix(rest, []byte("--")) {
			return len(rest) == 0 && newline
		}
		// A -- comment counts as white space there, up to its newline.
		k := bytes.IndexAny(rest, "\n\r")
		if k < 0 {
			return false
		}
		between = rest[k:]
	}
}

// quotedEnd is where the string or name quoted at sql[start] ends: after
// its closing quote (a doubled quote reads as two strings, the same text),
// a backslash escaping the next byte if escapes.
func quotedEnd(sql []byte, start int, escapes bool) int {
	q := sql[start]
	for i := start + 1; i < len(sql); i++ {
		switch {
		case escapes && sql[i] == '\\':
			i++
		case sql[i] == q:
			return i + 1
		}
	}
	return len(sql)
}

// dollarQuotedEnd is where the dollar-quoted string at sql[start] ends, or
// start+1 if no tag starts there ($1 is a parameter).
func dollarQuotedEnd(sql []byte, start int) int {
	tag := dollarTag(sql[start:])
	if tag == nil {
		return start + 1
	}
	if end := bytes.Index(sql[start+len(tag):], tag); end >= 0 {
		return start + 2*len(tag) + end
	}
	return len(sql)
}

// dollarTag is the dollar quote's opening tag ($$, $body$) at the start of
// s, nil if none starts there.
func dollarTag(s []byte) []byte {
	k := 1
	for k < len(s) && s[k] != '$' && identChar(s[k]) && !(k == 1 && s[k] >= '0' && s[k] <= '9') {
		k++
	}
	if len(s) == 0 || s[0] != '$' || k >= len(s) || s[k] != '$' {
		return nil
	}
	return s[:k+1]
}

// blockCommentEnd is where the /* comment at sql[start:] ends; PostgreSQL's
// comments nest.
func blockCommentEnd(sql []byte, start int) int {
	depth := 0
	for i := start; i+1 < len(sql); i++ {
		switch {
		case sql[i] == '/' && sql[i+1] == '*':
			depth++
			i++
		case sql[i] == '*' && sql[i+1] == '/':
			depth--
			i++
			if depth == 0 {
				return i + 1
			}
		}
	}
	return len(sql)
}

// isOwner reports whether a role name as written in SQL names the owner,
// as PostgreSQL reads it: a quoted name ("…", '…') as it is, a doubled
// quote standing for one; a plain name folded to lower case, ASCII letters
// only (Unicode folding would make bookſtore_owner the owner).
func (g *roleGuard) isOwner(name string) bool {
	if asciiLower(name) == "default" {
		return true // SET ROLE TO DEFAULT: the reset value, the owner (startup option)
	}
	for _, q := range []string{`"`, `'`} {
		if len(name) >= 2 && strings.HasPrefix(name, q) && strings.HasSuffix(name, q) {
			return strings.ReplaceAll(name[1:len(name)-1], q+q, q) == g.owner
		}
	}
	return asciiLower(name) == g.owner
}

// asciiLower folds ASCII letters to lower case, as PostgreSQL folds a
// plain identifier.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// setConfigOID is set_config's OID, fixed in PostgreSQL's catalog.
const setConfigOID = 2078

// refusesCall reports whether a FunctionCall (body) calls set_config on the
// role or the session authorization: the protocol's way to call a function
// by its OID, with no statement text for the guard to read. A malformed
// call of set_config is refused too; PostgreSQL would fail it anyway.
func (g *roleGuard) refusesCall(body []byte) bool {
	if len(body) < 6 || binary.BigEndian.Uint32(body) != setConfigOID {
		return false
	}
	formats := int(binary.BigEndian.Uint16(body[4:]))
	args := body[6:]
	if len(args) < 2*formats+6 {
		return true
	}
	args = args[2*formats+2:] // the formats, then the count of arguments
	n := int32(binary.BigEndian.Uint32(args))
	if n < 0 || int(n) > len(args)-4 {
		return true
	}
	return isRoleSetting(string(args[4 : 4+n]))
}

// countRefusal counts a refusal of the role guard and logs it: the one line
// the operator gets for it (the statement's text is not logged).
func countRefusal(m *dbMetrics, log interface{ Warn(string, ...any) }) {
	m.guardRefusals.Inc()
	log.Warn("role guard refused a statement that changes the role", "sqlstate", codeInsufficientPrivilege)
}

// refusedQuery is the replacement for a refused simple Query.
func (g *roleGuard) refusedQuery(dst []byte) []byte {
	out, _ := (&pgproto3.Query{String: g.refusal}).Encode(dst)
	return out
}

// refusedParse is the replacement for a refused Parse, whose message body
// is body: the statement exists under the client's name, and fails with the
// guard's error when executed. It declares as many parameters as the
// client's statement has, so the client's Describe and Bind fit it (a DO
// block takes no parameters, but PostgreSQL accepts bound values for the
// types its Parse declared).
func (g *roleGuard) refusedParse(body []byte) *pgproto3.Parse {
	var p pgproto3.Parse
	if err := p.Decode(body); err != nil {
		name, _, _ := cstring(body)
		return &pgproto3.Parse{Name: string(name), Query: g.refusal}
	}
	return standIn(&p, g.refusal)
}

// standIn is a Parse of sql in place of p: under p's name, with as many
// parameters as p's statement has, of p's types where p declared them and
// text where it left them to the server (what PostgreSQL would infer for
// $1 in set_config).
func standIn(p *pgproto3.Parse, sql string) *pgproto3.Parse {
	n := max(len(p.ParameterOIDs), highestParam(p.Query))
	types := make([]uint32, n)
	for i := range types {
		types[i] = textOID
		if i < len(p.ParameterOIDs) && p.ParameterOIDs[i] != 0 {
			types[i] = p.ParameterOIDs[i]
		}
	}
	return &pgproto3.Parse{Name: p.Name, Query: sql, ParameterOIDs: types}
}

// textOID is the OID of PostgreSQL's text type.
const textOID = 25

// highestParam is the highest $n that sql refers to. A $n inside a string
// or comment counts too; then the refusal declares more parameters than the
// client binds, and the client gets PostgreSQL's count error instead.
func highestParam(sql string) int {
	high := 0
	for i := 0; i < len(sql); i++ {
		if sql[i] != '$' || i > 0 && identChar(sql[i-1]) {
			continue
		}
		n, j := 0, i+1
		for ; j < len(sql) && sql[j] >= '0' && sql[j] <= '9' && n < 65536; j++ {
			n = n*10 + int(sql[j]-'0')
		}
		high = max(high, n)
		i = j - 1
	}
	return high
}
