package proxy

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/puddle/v2"

	"github.com/pgrotate/pgrotate/configs"
)

// BenchmarkTxStatement measures what transaction pooling's inspectors do
// for one statement inside a transaction, as pgbench sends it: the client's
// messages (-M simple: a Query; -M extended: Parse, Bind, Describe,
// Execute, Sync of the unnamed statement; -M prepared: Bind, Describe,
// Execute, Sync of a named one) and the server's replies up to ReadyForQuery, with the inspectors of the
// goroutine relay (a lock per message) and of the event loop (none; see
// loopClient). As for the relay, 0 allocs/op is the contract (run with
// -benchmem); TestTxStatementDoesNotAllocate holds it.
func BenchmarkTxStatement(b *testing.B) {
	for _, st := range txStatements(b) {
		for _, rl := range txRelays() {
			b.Run(st.name+"/"+rl.name, func(b *testing.B) {
				c, srv := rl.inspectors(st.setup(b))
				b.ReportAllocs()
				for b.Loop() {
					exchange(b, c, srv, st.client, st.server)
				}
			})
		}
	}
}

// The same statements, as a test: an allocation per statement on this path
// fails it, where the benchmark would only report it.
func TestTxStatementDoesNotAllocate(t *testing.T) {
	for _, st := range txStatements(t) {
		for _, rl := range txRelays() {
			c, srv := rl.inspectors(st.setup(t))
			exchange(t, c, srv, st.client, st.server) // warm: the queues get their arrays
			if n := testing.AllocsPerRun(100, func() { exchange(t, c, srv, st.client, st.server) }); n != 0 {
				t.Errorf("%s on the %s relay: %v allocations per statement, want 0", st.name, rl.name, n)
			}
		}
	}
}

// txRelayKind names the inspectors each relay gives a transaction-mode client.
type txRelayKind struct {
	name       string
	inspectors func(*txClient, txServerInspector) (client, server inspector)
}

func txRelays() []txRelayKind {
	return []txRelayKind{
		{"goroutine", func(c *txClient, srv txServerInspector) (inspector, inspector) { return c, srv }},
		{"loop", func(c *txClient, srv txServerInspector) (inspector, inspector) {
			return loopClient{c}, &loopServerInspector{srv}
		}},
	}
}

// txStatement is one statement inside a transaction as pgbench sends it,
// with the server's replies, and how to set up a client that has sent the
// statements before it.
type txStatement struct {
	name           string
	setup          func(testing.TB) (*txClient, txServerInspector)
	client, server []frame
}

func txStatements(tb testing.TB) []txStatement {
	const sql = "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2"
	args := [][]byte{[]byte("42"), []byte("12345")}
	replies := []pgproto3.Message{&pgproto3.BindComplete{}, &pgproto3.NoData{},
		&pgproto3.CommandComplete{CommandTag: []byte("UPDATE 1")}, &pgproto3.ReadyForQuery{TxStatus: 'T'}}
	prepare := frames(tb, &pgproto3.Parse{Name: "P_1", Query: sql}, &pgproto3.Sync{})
	prepared := frames(tb, &pgproto3.ParseComplete{}, &pgproto3.ReadyForQuery{TxStatus: 'T'})
	return []txStatement{
		{
			name:   "simple",
			setup:  benchTxClient,
			client: frames(tb, &pgproto3.Query{String: "UPDATE pgbench_accounts SET abalance = abalance + 42 WHERE aid = 12345;"}),
			server: frames(tb, &pgproto3.CommandComplete{CommandTag: []byte("UPDATE 1")}, &pgproto3.ReadyForQuery{TxStatus: 'T'}),
		},
		{
			name:  "extended",
			setup: benchTxClient,
			client: frames(tb, &pgproto3.Parse{Query: sql}, &pgproto3.Bind{Parameters: args},
				&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}),
			server: frames(tb, append([]pgproto3.Message{&pgproto3.ParseComplete{}}, replies...)...),
		},
		{
			name: "prepared",
			setup: func(tb testing.TB) (*txClient, txServerInspector) {
				c, srv := benchTxClient(tb)
				exchange(tb, c, srv, prepare, prepared)
				return c, srv
			},
			client: frames(tb, &pgproto3.Bind{PreparedStatement: "P_1", Parameters: args},
				&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}),
			server: frames(tb, replies...),
		},
	}
}

// exchange passes the client's messages, then the server's replies, through
// the inspectors.
func exchange(b testing.TB, c, srv inspector, client, server []frame) {
	for _, f := range client {
		if _, err := c.inspect(f.typ, f.body); err != nil {
			b.Fatal(err)
		}
	}
	for _, f := range server {
		if _, err := srv.inspect(f.typ, f.body); err != nil {
			b.Fatal(err)
		}
	}
}

// benchTxClient is a client of a transaction-mode pool that holds a lease
// in the middle of a transaction (the lease stays with it).
func benchTxClient(b testing.TB) (*txClient, txServerInspector) {
	res, err := puddle.NewPool(&puddle.Config[*serverConn]{
		Constructor: func(context.Context) (*serverConn, error) {
			return &serverConn{params: map[string]string{}, stmts: newConnStmts()}, nil
		},
		Destructor: func(*serverConn) {},
		MaxSize:    1,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(res.Close)
	l, err := res.Acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(l.Release)
	p := &pool{db: &configs.Database{}, stmts: newStmtRegistry(), m: (*Metrics)(nil).forDatabase("bench")}
	c := newTxClient(context.Background(), &session{}, p, nil)
	c.lease = l
	return c, txServerInspector{c: c, sc: l.Value()}
}

// frame is one message: its type byte and body.
type frame struct {
	typ  byte
	body []byte
}

// frames encodes msgs and splits them as the relay hands them to the
// inspectors.
func frames(b testing.TB, msgs ...pgproto3.Message) []frame {
	var out []frame
	for _, m := range msgs {
		raw := encode(b, m)
		out = append(out, frame{typ: raw[0], body: raw[5:]})
	}
	return out
}

// deallocName recognises exactly one DEALLOCATE of a named statement, as
// PostgreSQL reads its name; everything else goes to the server unchanged.
func TestDeallocName(t *testing.T) {
	for _, c := range []struct {
		sql  string
		name string
		ok   bool
	}{
		{"DEALLOCATE _pg3_0", "_pg3_0", true},
		{"  deallocate prepare a12 ;  ", "a12", true},
		{"DEALLOCATE S_1\x00", "s_1", true},
		{`DEALLOCATE "S 1"`, "S 1", true},
		{`DEALLOCATE "a""b";`, `a"b`, true},
		{"DEALLOCATE ALL", "", false},
		{"DEALLOCATE PREPARE ALL", "", false},
		{"DEALLOCATE a; SELECT 1", "", false},
		{"SELECT 'DEALLOCATE a'", "", false},
		{`DEALLOCATE "unterminated`, "", false},
		{"DEALLOCATE", "", false},
	} {
		name, ok := deallocName([]byte(c.sql))
		if name != c.name || ok != c.ok {
			t.Errorf("deallocName(%q) = %q, %v; want %q, %v", c.sql, name, ok, c.name, c.ok)
		}
	}
}
