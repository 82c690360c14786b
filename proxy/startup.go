package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// readStartup negotiates encryption (see negotiate) and reads the client's
// StartupMessage or CancelRequest, answering a newer protocol version with
// NegotiateProtocolVersion (see decodeStartupMessage). Transport failures
// come back as *disconnect; a packet that is no startup packet as a
// WireError the client is told.
func (s *session) readStartup() (pgproto3.FrontendMessage, error) {
	head, err := s.negotiate()
	if err != nil {
		return nil, err
	}
	body, err := readStartupPacket(io.MultiReader(bytes.NewReader(head), s.conn))
	if err != nil {
		return nil, err
	}
	switch binary.BigEndian.Uint32(body) {
	case cancelRequestCode:
		// Accepted in plaintext whatever the mode: libpq before 17 sends
		// cancel requests unencrypted, and PostgreSQL accepts them so.
		var cr pgproto3.CancelRequest
		if err := cr.Decode(body); err != nil {
			return nil, malformedStartup(err)
		}
		return &cr, nil
	case sslRequestCode, gssEncRequestCode:
		return nil, errEncryptionAgain
	}
	m, npv, err := decodeStartupMessage(body)
	if err != nil {
		return nil, err
	}
	if s.srv.tls.required() && !s.isTLS() {
		// As a pg_hba.conf with only hostssl lines: refused after the
		// startup packet, so the client sees why.
		return nil, fatal(codeInvalidAuthSpec, "pgrotate requires TLS (tls.mode: require)")
	}
	if npv != nil {
		if err := s.send(npv); err != nil {
			return nil, &disconnect{err}
		}
	}
	return m, nil
}

// errEncryptionAgain answers an encryption request after one was answered.
var errEncryptionAgain = fatal(codeProtocolViolation, "unexpected encryption request: encryption was already negotiated")

// newStartupBackend is the pgproto3 Backend that reads a client's
// authentication messages from r (its startup packet is read apart, see
// readStartupPacket) and writes to w.
func newStartupBackend(r io.Reader, w io.Writer) *pgproto3.Backend {
	return pgproto3.NewBackend(&messageReader{r: r}, w)
}

// messageReader gives pgproto3's reader, which reads ahead as far as it
// can, at most the rest of the message it is reading. So it holds nothing
// back when the relay takes the stream over (clientRd): a client may send
// its first query in the same write as its last authentication message.
type messageReader struct {
	r      io.Reader
	header [headerLen]byte
	got    int // bytes of the current message's header read so far
	left   int // bytes of the current message's body still to come
}

func (m *messageReader) Read(p []byte) (int, error) {
	if m.left > 0 {
		n, err := m.r.Read(p[:min(len(p), m.left)])
		m.left -= n
		return n, err
	}
	n, err := m.r.Read(p[:min(len(p), headerLen-m.got)])
	m.got += copy(m.header[m.got:], p[:n])
	if m.got == headerLen {
		m.left, m.got = max(int(binary.BigEndian.Uint32(m.header[1:]))-4, 0), 0
	}
	return n, err
}

// maxStartupPacket is PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
const maxStartupPacket = 10000

// startupLengthOK reports whether n, a startup packet's length field
// (itself included), is one PostgreSQL accepts: a code at least, and at
// most maxStartupPacket after the length.
func startupLengthOK(n int) bool { return n >= 8 && n <= 4+maxStartupPacket }

// errStartupLength is PostgreSQL's answer to a startup packet whose length
// is out of bounds: often no PostgreSQL client at all (an HTTP request, a
// TLS ClientHello where TLS is off).
var errStartupLength = fatal(codeProtocolViolation, "invalid length of startup packet")

// readStartupPacket reads one startup packet from r and returns its body,
// the bytes after its length.
func readStartupPacket(r io.Reader) ([]byte, error) {
	var length [4]byte
	if _, err := io.ReadFull(r, length[:]); err != nil {
		return nil, &disconnect{fmt.Errorf("reading startup packet: %w", err)}
	}
	n := int(int32(binary.BigEndian.Uint32(length[:])))
	if !startupLengthOK(n) {
		return nil, errStartupLength
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, &disconnect{fmt.Errorf("reading startup packet: %w", err)}
	}
	return body, nil
}

// malformedStartup is the error of a startup packet of the right length
// whose contents are not what its code says.
func malformedStartup(cause error) error {
	return withCause(fatal(codeProtocolViolation, "invalid startup packet layout"), cause)
}

// newestMinor is the newest minor version of protocol 3 pgrotate speaks
// with clients: 3.2 differs from 3.0 only by longer cancel keys, which a
// 3.2 client reads whatever their length.
const newestMinor = 2

// decodeStartupMessage reads the body of a StartupMessage as PostgreSQL's
// ProcessStartupPacket does. Protocol 3.0 and 3.2 are taken as they are.
// A newer 3.x, or protocol options (_pq_.*, none of which pgrotate knows),
// get a NegotiateProtocolVersion (npv) that says what pgrotate speaks, and
// the login goes on in that version without the options: a client that
// asked for more decides itself whether that will do. Another major
// version is refused (0A000), and a malformed packet (08P01).
func decodeStartupMessage(body []byte) (m *pgproto3.StartupMessage, npv *pgproto3.NegotiateProtocolVersion, err error) {
	code := binary.BigEndian.Uint32(body)
	major, minor := code>>16, code&0xffff
	if major != 3 {
		return nil, nil, fatal(codeFeatureNotSupported,
			"unsupported frontend protocol %d.%d: server supports 3.0 to 3.%d", major, minor, newestMinor)
	}
	agreed := uint32(0)
	if minor >= newestMinor {
		agreed = newestMinor
	}
	fixed := bytes.Clone(body)
	binary.BigEndian.PutUint32(fixed, 3<<16|agreed)
	m = new(pgproto3.StartupMessage)
	if err := m.Decode(fixed); err != nil {
		return nil, nil, malformedStartup(err)
	}
	var unknown []string
	for name := range m.Parameters {
		if name == "" {
			return nil, nil, malformedStartup(errors.New("a parameter without a name"))
		}
		if strings.HasPrefix(name, "_pq_.") {
			unknown = append(unknown, name)
			delete(m.Parameters, name)
		}
	}
	if minor == agreed && len(unknown) == 0 {
		return m, nil, nil
	}
	slices.Sort(unknown)
	return m, &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: agreed, UnrecognizedOptions: unknown}, nil
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
