package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

func TestParseOptions(t *testing.T) {
	cases := []struct {
		in   string
		want map[string]string
		code string // SQLSTATE of the refusal, "" when accepted
	}{
		{"-c search_path=app", map[string]string{"search_path": "app"}, ""},
		{"-csearch_path=app --statement-timeout=5s", map[string]string{"search_path": "app", "statement_timeout": "5s"}, ""},
		{`-c application_name=my\ app`, map[string]string{"application_name": "my app"}, ""},
		{"  ", map[string]string{}, ""},
		{"-d 5", nil, codeFeatureNotSupported},
		{"-c novalue", nil, codeProtocolViolation},
	}
	for _, tc := range cases {
		got, err := parseOptions(tc.in)
		if tc.code != "" {
			var we *WireError
			if !errors.As(err, &we) || we.Code != tc.code {
				t.Errorf("parseOptions(%q) = %v; want SQLSTATE %s", tc.in, err, tc.code)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("parseOptions(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("parseOptions(%q)[%s] = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
}

// A client's startup settings come out as PostgreSQL would apply them: the
// packet's own parameters after its options (JDBC sends TimeZone as a
// parameter; an app's options then do not override it), later options after
// earlier ones, and a setting named in any case is one setting, under the
// name PostgreSQL reports it by.
func TestParseStartupSettingsAsPostgresAppliesThem(t *testing.T) {
	cases := []struct {
		params map[string]string
		want   map[string]string
	}{
		{map[string]string{"options": "-c TimeZone=Asia/Tokyo", "TimeZone": "Etc/UTC"}, map[string]string{"TimeZone": "Etc/UTC"}},
		{map[string]string{"options": "-c timezone=Asia/Tokyo"}, map[string]string{"TimeZone": "Asia/Tokyo"}},
		{map[string]string{"options": "-c TimeZone=Asia/Tokyo -c timezone=UTC"}, map[string]string{"TimeZone": "UTC"}},
		{map[string]string{"options": "--datestyle=German", "DateStyle": "ISO, MDY"}, map[string]string{"DateStyle": "ISO, MDY"}},
		{map[string]string{"IntervalStyle": "iso_8601", "Application_Name": "shop"}, map[string]string{"IntervalStyle": "iso_8601", "application_name": "shop"}},
	}
	for _, tc := range cases {
		tc.params["user"] = "app"
		for range 20 { // the packet's parameters arrive as a map, in no order
			p, err := parseStartup(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: tc.params})
			if err != nil || !maps.Equal(p.settings, tc.want) {
				t.Fatalf("startup %v: settings %v, %v; want %v", tc.params, p.settings, err, tc.want)
			}
		}
	}
}

// A client cannot ask for another role at startup, in any spelling.
func TestParseStartupRefusesRoleChanges(t *testing.T) {
	for _, params := range []map[string]string{
		{"user": "app", "role": "postgres"},
		{"user": "app", "options": "-c role=postgres"},
		{"user": "app", "options": "--session-authorization=postgres"},
		{"user": "app", "options": "-c ROLE=postgres"},
	} {
		_, err := parseStartup(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: params})
		var we *WireError
		if !errors.As(err, &we) || we.Code != codeInsufficientPrivilege {
			t.Errorf("startup %v: %v; want SQLSTATE 42501", params, err)
		}
	}
}

func TestSetConfigSQLQuotes(t *testing.T) {
	got := setConfigSQL(map[string]string{"application_name": `it's a \ test`, "TimeZone": "UTC"})
	want := `SELECT pg_catalog.set_config(E'TimeZone', E'UTC', false), pg_catalog.set_config(E'application_name', E'it''s a \\ test', false)`
	if got != want {
		t.Errorf("setConfigSQL =\n%s\nwant\n%s", got, want)
	}
}

// FuzzStartup feeds arbitrary bytes to the start of a client connection:
// reading the startup packet and splitting its parameters must never panic,
// and anything accepted must name a user.
func FuzzStartup(f *testing.F) {
	startup := func(params map[string]string) []byte {
		b, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: params}).Encode(nil)
		return b
	}
	ssl, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	f.Add(startup(map[string]string{"user": "app", "database": "bookstore"}))
	f.Add(startup(map[string]string{"user": "app", "options": `-c search_path=a\ b --x=y`}))
	f.Add(append(ssl, startup(map[string]string{"user": "u"})...))
	f.Add([]byte{0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		be := pgproto3.NewBackend(bytes.NewReader(data), nil)
		for range 3 {
			msg, err := be.ReceiveStartupMessage()
			if err != nil {
				return
			}
			sm, ok := msg.(*pgproto3.StartupMessage)
			if !ok {
				continue
			}
			p, err := parseStartup(sm)
			if err == nil && p.user == "" {
				t.Fatal("accepted a startup packet without a user")
			}
			if err == nil {
				_ = setConfigSQL(p.settings)
			}
			return
		}
	})
}

// A StartupMessage is read as PostgreSQL reads it: 3.0 and 3.2 as they
// are; another 3.x, or protocol options, answered with the version pgrotate
// speaks and the options it does not know (which the login then goes on
// without); another major version refused.
func TestDecodeStartupMessageNegotiates(t *testing.T) {
	body := func(version uint32, params string) []byte {
		return append(binary.BigEndian.AppendUint32(nil, version), params...)
	}
	const user = "user\x00app\x00"
	for _, c := range []struct {
		name        string
		body        []byte
		newest      uint32 // the NegotiateProtocolVersion's, if any
		unknown     []string
		negotiates  bool
		code        string // of the error, if any
		wantVersion uint32
	}{
		{name: "3.0", body: body(3<<16, user+"\x00"), wantVersion: 3 << 16},
		{name: "3.2", body: body(3<<16|2, user+"\x00"), wantVersion: 3<<16 | 2},
		{name: "3.0 with options", body: body(3<<16, "_pq_.b\x00x\x00"+user+"_pq_.a\x00y\x00\x00"),
			negotiates: true, newest: 0, unknown: []string{"_pq_.a", "_pq_.b"}, wantVersion: 3 << 16},
		{name: "3.1", body: body(3<<16|1, user+"\x00"), negotiates: true, newest: 0, wantVersion: 3 << 16},
		{name: "3.99", body: body(3<<16|99, user+"\x00"), negotiates: true, newest: 2, wantVersion: 3<<16 | 2},
		{name: "4.0", body: body(4<<16, user+"\x00"), code: codeFeatureNotSupported},
		{name: "no terminator", body: body(3<<16, user), code: codeProtocolViolation},
	} {
		m, npv, err := decodeStartupMessage(c.body)
		if c.code != "" {
			if w, ok := err.(*WireError); !ok || w.Code != c.code {
				t.Errorf("%s: %v; want SQLSTATE %s", c.name, err, c.code)
			}
			continue
		}
		if err != nil || m.ProtocolVersion != c.wantVersion || m.Parameters["user"] != "app" || len(m.Parameters) != 1 {
			t.Errorf("%s: %+v, %v; want version %#x and only the user", c.name, m, err, c.wantVersion)
			continue
		}
		if (npv != nil) != c.negotiates {
			t.Errorf("%s: NegotiateProtocolVersion %+v; want one: %v", c.name, npv, c.negotiates)
			continue
		}
		if npv != nil && (npv.NewestMinorProtocol != c.newest || !slices.Equal(npv.UnrecognizedOptions, c.unknown)) {
			t.Errorf("%s: NegotiateProtocolVersion %+v; want 3.%d and %q", c.name, npv, c.newest, c.unknown)
		}
	}
}
