package proxy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// readStartup negotiates encryption (see negotiate) and reads the client's
// StartupMessage or CancelRequest. pgproto3 enforces PostgreSQL's startup
// packet size cap (MAX_STARTUP_PACKET_LENGTH, 10000 bytes). Transport
// failures come back as *disconnect.
func (s *session) readStartup() (pgproto3.FrontendMessage, error) {
	if err := s.negotiate(); err != nil {
		return nil, err
	}
	msg, err := s.be.ReceiveStartupMessage()
	if err != nil {
		return nil, &disconnect{fmt.Errorf("reading startup packet: %w", err)}
	}
	switch m := msg.(type) {
	case *pgproto3.StartupMessage:
		if s.srv.tls.required() && !s.isTLS() {
			// As a pg_hba.conf with only hostssl lines: refused after the
			// startup packet, so the client sees why.
			return nil, fatal(codeInvalidAuthSpec, "pgrotate requires TLS (tls.mode: require)")
		}
		return m, nil
	case *pgproto3.CancelRequest:
		// Accepted in plaintext whatever the mode: libpq before 17 sends
		// cancel requests unencrypted, and PostgreSQL accepts them so.
		return m, nil
	default:
		return nil, fatal(codeProtocolViolation, "unexpected encryption request: encryption was already negotiated")
	}
}

// startupParams are the parameters of a StartupMessage, split into what
// pgrotate consumes and what it applies to the server session.
type startupParams struct {
	user, database string
	settings       map[string]string // GUCs to apply with set_config, from params and options
}

// parseStartup splits m's parameters. Role changes are refused here already:
// sessions always act as the owner role.
func parseStartup(m *pgproto3.StartupMessage) (*startupParams, error) {
	// PostgreSQL applies the options first and the packet's own parameters
	// after them, so a parameter wins over an option for the same setting.
	settings, err := parseOptions(m.Parameters["options"])
	if err != nil {
		return nil, err
	}
	p := &startupParams{settings: settings}
	for k, v := range m.Parameters {
		switch k {
		case "user":
			p.user = v
		case "database":
			p.database = v
		case "replication":
			if v != "false" && v != "off" && v != "0" && v != "no" {
				return nil, fatal(codeFeatureNotSupported, "pgrotate does not proxy replication connections")
			}
		case "options":
		default:
			p.settings[settingName(k)] = v
		}
	}
	if p.user == "" {
		return nil, fatal(codeInvalidAuthSpec, "no PostgreSQL user name specified in startup packet")
	}
	if p.database == "" {
		p.database = p.user
	}
	for k := range p.settings {
		if isRoleSetting(k) {
			return nil, fatal(codeInsufficientPrivilege, "%s cannot be set: sessions through pgrotate always act as the database's owner role", k)
		}
	}
	return p, nil
}

// isRoleSetting reports whether a GUC name changes who the session acts as.
func isRoleSetting(name string) bool {
	n := strings.ToLower(name)
	return n == "role" || n == "session_authorization"
}

// parseOptions reads the command-line style "options" startup parameter:
// "-c name=value" and "--name=value" separated by unescaped spaces, with
// backslash escapes (PostgreSQL's pg_split_opts and process_postgres_switches).
func parseOptions(s string) (map[string]string, error) {
	args := splitOptions(s)
	out := make(map[string]string)
	for i := 0; i < len(args); i++ {
		var kv string
		switch a := args[i]; {
		case a == "-c" && i+1 < len(args):
			i++
			kv = args[i]
		case strings.HasPrefix(a, "-c") && len(a) > 2:
			kv = a[2:]
		case strings.HasPrefix(a, "--"):
			kv = a[2:]
		default:
			return nil, fatal(codeFeatureNotSupported, "unsupported option %q in startup options: only -c name=value is accepted", a)
		}
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, fatal(codeProtocolViolation, "invalid startup option %q: expected name=value", kv)
		}
		out[settingName(strings.ReplaceAll(name, "-", "_"))] = value
	}
	return out, nil
}

// settingName is the name PostgreSQL knows a setting by, however a client
// spelled it: setting names are not case-sensitive, and the reported ones
// are matched to the server's ParameterStatus by name. Only DateStyle,
// IntervalStyle and TimeZone are not all lowercase.
func settingName(name string) string {
	switch n := strings.ToLower(name); n {
	case "datestyle":
		return "DateStyle"
	case "intervalstyle":
		return "IntervalStyle"
	case "timezone":
		return "TimeZone"
	default:
		return n
	}
}

func splitOptions(s string) []string {
	var args []string
	var cur strings.Builder
	inArg, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			escaped, inArg = true, true
		case r == ' ' || r == '\t' || r == '\n':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// setConfigSQL renders settings as one statement that applies them all to the
// server session, in a stable order. Values go in E-string literals, which
// mean the same whatever standard_conforming_strings is.
func setConfigSQL(settings map[string]string) string {
	if len(settings) == 0 {
		return ""
	}
	var b strings.Builder
	b.Grow(64 * len(settings))
	b.WriteString("SELECT ")
	for i, k := range sortedKeys(settings) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("pg_catalog.set_config(")
		writeLiteral(&b, k)
		b.WriteString(", ")
		writeLiteral(&b, settings[k])
		b.WriteString(", false)")
	}
	return b.String()
}

// settingsQueries are the Queries that run reset (SQL, or "") and then
// sql, a setConfigSQL text, on a server session whose client_encoding may
// be any client's. PostgreSQL reads a Query in the session's
// client_encoding, and in some (SJIS, BIG5, GBK) the second byte of a
// character can be a backslash or a quote: a value holding such a
// character, read in another encoding, would end its literal early and
// run as SQL. Text of ASCII alone reads the same in every encoding, and
// is sent at once. Other text is read in the server's own encoding, in
// which no character holds an ASCII byte: the Query before it switches to
// that, and it starts by going back to the session's default (the
// client's own client_encoding, if it has one, is among the settings).
func settingsQueries(reset, sql string) []pgproto3.FrontendMessage {
	if sql == "" || isASCII(sql) {
		return []pgproto3.FrontendMessage{&pgproto3.Query{String: joinSQL(reset, sql)}}
	}
	return []pgproto3.FrontendMessage{
		&pgproto3.Query{String: joinSQL(reset, readInServerEncoding)},
		&pgproto3.Query{String: "RESET client_encoding; " + sql},
	}
}

// readInServerEncoding makes the session read what follows in the
// server's encoding.
const readInServerEncoding = "SELECT pg_catalog.set_config('client_encoding', pg_catalog.current_setting('server_encoding'), false)"

// joinSQL joins two SQL texts, either of which may be empty, into one.
func joinSQL(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// isASCII reports whether s holds ASCII bytes alone.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// startupSettings are a session-mode client's startup settings as the pool
// uses them, rendered once per login: key names them (see
// serverConn.appliedKey), sql applies them. Both the login and the release
// of its server connection need both.
type startupSettings struct{ key, sql string }

func renderSettings(m map[string]string) *startupSettings {
	return &startupSettings{key: settingsKey(m), sql: setConfigSQL(m)}
}

// writeLiteral writes s as an E-string literal.
func writeLiteral(b *strings.Builder, s string) {
	b.WriteString("E'")
	_, _ = literalEscaper.WriteString(b, s)
	b.WriteByte('\'')
}

// sortedKeys returns m's keys in order, in one allocation (slices.Sorted
// of maps.Keys grows its slice key by key: a dozen allocations per login
// over the greeting and the settings).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// paramStatus is one parameter a server session reports.
type paramStatus struct{ name, value string }

// reportedParams are the parameters a server session reports, sorted by
// name: the order a greeting sends them in. Never changed once made, so a
// transaction-mode pool shares its defaults with every login; cloning and
// sorting them per login was 5 of its ~130 allocations.
type reportedParams []paramStatus

// sortedParams makes reportedParams of m, in one allocation.
func sortedParams(m map[string]string) reportedParams {
	out := make(reportedParams, 0, len(m))
	for k, v := range m {
		out = append(out, paramStatus{k, v})
	}
	slices.SortFunc(out, func(a, b paramStatus) int { return strings.Compare(a.name, b.name) })
	return out
}

// literalEscaper escapes what goes between the quotes of an E-string
// literal. Built once: a Replacer built per call was 1.6 % of a
// session-mode login's CPU (perf, pgbench -C), most of its allocations.
var literalEscaper = strings.NewReplacer(`\`, `\\`, `'`, `''`)
