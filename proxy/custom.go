package proxy

import (
	"regexp"
	"strings"
)

// customSettings are the names of the custom settings a session-mode client
// set at startup or may have set since: settings with a dot in the name
// (app.tenant_id, myapp.user), which PostgreSQL takes without declaring and
// lists nowhere, not in pg_settings and not in SHOW ALL. Row-level security
// policies and audit triggers read them with current_setting. A move reads
// each by name and carries it over; one the client never set reads NULL
// and stays behind. Names are lower case, as PostgreSQL compares them.
type customSettings map[string]struct{}

// maxCustomSettings bounds how many names a session keeps: each one costs
// a little of every move.
const maxCustomSettings = 64

// customSet finds the names SET and set_config give custom settings in
// statement text (SET LOCAL lasts only for its transaction).
var customSet = regexp.MustCompile(`(?is)\bset\s+(?:session\s+)?("?[a-z_][a-z0-9_$]*"?\s*\.\s*"?[a-z_][a-z0-9_$]*"?)|\bset_config\s*\(\s*'([^']+)'`)

// note records name if it is a custom setting's. A name of other than
// ASCII is left out: stateSQL's text is read in the client's own
// client_encoding, where only ASCII is sure to read as written (see
// settingsQueries).
func (c *customSettings) note(name string) {
	if !strings.Contains(name, ".") || !isASCII(name) || len(*c) >= maxCustomSettings {
		return
	}
	if *c == nil {
		*c = make(customSettings)
	}
	(*c)[strings.ToLower(name)] = struct{}{}
}

// scan records the custom settings that statement text sets, of which
// scanText found m: nothing to do without a SET or set_config.
func (c *customSettings) scan(sql []byte, m mentions) {
	if !m.settings {
		return
	}
	for _, m := range customSet.FindAllSubmatch(sql, -1) {
		name := m[1]
		if name == nil {
			name = m[2]
		}
		c.note(strings.Map(func(r rune) rune {
			if r == '"' || r == ' ' || r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, string(name)))
	}
}

// stateSQL is the part of sessionStateSQL that reads the custom settings
// by name: a 'set' row for each one the session holds.
func (c customSettings) stateSQL() string {
	if len(c) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nUNION ALL\nSELECT 'set', n, " + serverEncodedHex("pg_catalog.current_setting(n, true)") + " FROM pg_catalog.unnest(ARRAY[")
	for i, name := range sortedKeys(c) {
		if i > 0 {
			b.WriteString(", ")
		}
		writeLiteral(&b, name)
	}
	b.WriteString("]::text[]) AS n WHERE pg_catalog.current_setting(n, true) IS NOT NULL")
	return b.String()
}
