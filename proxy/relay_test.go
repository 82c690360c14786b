package proxy

import (
	"io"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The session relay keeps what the server holds as the unnamed statement,
// which a move parses again on the client's new connection: the client's
// last Parse of it, the role guard's refusal in place of an escape (never
// the escape itself), and nothing once a simple Query has dropped it or a
// Close has closed it. A named statement leaves it alone.
func TestSessionRelayKeepsTheUnnamedStatement(t *testing.T) {
	g := newRoleGuard("bookstore_owner")
	st := newRelayState()
	ci := &clientInspector{st: st, guard: g, log: slog.New(slog.NewTextHandler(io.Discard, nil)), m: (*Metrics)(nil).forDatabase("test")}
	steps := []struct {
		msg  pgproto3.Message
		want string // the unnamed statement's text after msg; "" none
	}{
		{&pgproto3.Parse{Query: "SELECT $1::int + 100", ParameterOIDs: []uint32{23}}, "SELECT $1::int + 100"},
		{&pgproto3.Sync{}, "SELECT $1::int + 100"},
		{&pgproto3.Parse{Name: "s1", Query: "SELECT 2"}, "SELECT $1::int + 100"},
		{&pgproto3.Parse{Query: "SELECT set_config('role', $1, false)"}, g.refusal},
		{&pgproto3.Query{String: "SELECT 3"}, ""},
		{&pgproto3.Parse{Query: "SELECT 4"}, "SELECT 4"},
		{&pgproto3.Close{ObjectType: 'S', Name: "s1"}, "SELECT 4"},
		{&pgproto3.Close{ObjectType: 'P'}, "SELECT 4"}, // the unnamed portal
		{&pgproto3.Close{ObjectType: 'S'}, ""},
	}
	for _, s := range steps {
		raw := encode(t, s.msg)
		if _, err := ci.inspect(raw[0], raw[5:]); err != nil {
			t.Fatal(err)
		}
		var got pgproto3.Parse
		if len(st.unnamed) > 0 {
			if err := got.Decode(st.unnamed); err != nil {
				t.Fatalf("after %T: kept unnamed statement: %v", s.msg, err)
			}
		}
		if got.Name != "" || got.Query != s.want {
			t.Errorf("after %#v: unnamed statement %q %q; want %q", s.msg, got.Name, got.Query, s.want)
		}
	}
}

// A session-mode server connection is idle — a moment at which the client
// may move to another one — only once the server has answered every Sync
// and Query, outside any transaction, implicit ones too: extended-protocol
// messages run in one implicit transaction until Sync, even when a Flush
// has had everything answered.
func TestSessionRelayIdleMoments(t *testing.T) {
	st := newRelayState()
	m := (*Metrics)(nil).forDatabase("test")
	ci := &clientInspector{st: st, m: m}
	si := serverInspector{st: st, sc: &serverConn{params: map[string]string{}}, m: m}
	ready := func(status byte) pgproto3.Message { return &pgproto3.ReadyForQuery{TxStatus: status} }
	steps := []struct {
		fromServer bool
		msg        pgproto3.Message
		idle       bool
	}{
		{false, &pgproto3.Parse{Query: "INSERT INTO t VALUES (1)"}, false},
		{false, &pgproto3.Bind{}, false},
		{false, &pgproto3.Execute{}, false},
		{false, &pgproto3.Flush{}, false},
		{true, &pgproto3.CommandComplete{CommandTag: []byte("INSERT 0 1")}, false}, // answered, not synced
		{false, &pgproto3.Sync{}, false},
		{true, ready('I'), true},
		{false, &pgproto3.Query{String: "BEGIN"}, false},
		{true, ready('T'), false},
		{false, &pgproto3.Query{String: "COMMIT"}, false},
		{true, ready('I'), true},
		{false, &pgproto3.Describe{ObjectType: 'S', Name: "s1"}, false},
		{false, &pgproto3.Query{String: "SELECT 1"}, false}, // a Query ends the implicit transaction
		{true, ready('I'), true},
	}
	for i, s := range steps {
		raw := encode(t, s.msg)
		var in inspector = ci
		if s.fromServer {
			in = si
		}
		if _, err := in.inspect(raw[0], raw[5:]); err != nil {
			t.Fatal(err)
		}
		if st.idle() != s.idle {
			t.Errorf("step %d, after %#v: idle %v; want %v", i, s.msg, st.idle(), s.idle)
		}
	}
}
