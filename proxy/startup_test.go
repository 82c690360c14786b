package proxy

import (
	"bytes"
	"errors"
	"maps"
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
