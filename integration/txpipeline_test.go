package integration

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// What a transaction-mode client pipelines runs as it would on a server
// connection of its own, also when an error makes PostgreSQL skip the rest
// of a segment (everything up to the next Sync), statements pgrotate
// prepared there for the client included.

// segments reads the replies of n segments from fe and tells each one's
// rows and errors, in order: "row:<first column>" or "error:<SQLSTATE>".
func segments(t *testing.T, fe *pgproto3.Frontend, n int) [][]string {
	t.Helper()
	out := make([][]string, 0, n)
	var seg []string
	for len(out) < n {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("reading segment %d: %v (so far %q)", len(out)+1, err, out)
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			seg = append(seg, "row:"+string(m.Values[0]))
		case *pgproto3.ErrorResponse:
			seg = append(seg, "error:"+m.Code)
		case *pgproto3.ReadyForQuery:
			out, seg = append(out, seg), nil
		}
	}
	return out
}

// sendAll sends msgs to the server at once.
func sendAll(t *testing.T, fe *pgproto3.Frontend, msgs ...pgproto3.FrontendMessage) {
	t.Helper()
	for _, m := range msgs {
		fe.Send(m)
	}
	must(t, fe.Flush())
}

func TestTransactionModePipelineAfterAnError(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	a, b := env.connect(t), env.connect(t)
	for _, s := range []struct{ name, sql string }{{"fails", "SELECT 1/0"}, {"ok", "SELECT 'b ok'::text"}, {"", "SELECT 'b own'::text"}} {
		_, err := b.PgConn().Prepare(ctx, s.name, s.sql, nil)
		must(t, err)
	}
	// a's unnamed statement is the one the only server connection holds now.
	_, err := a.PgConn().Prepare(ctx, "", "SELECT 'a secret'::text", nil)
	must(t, err)

	// b binds its statements on a connection that has none of them: pgrotate
	// prepares them in the first segment, whose error skips those Parses.
	// The second and third segments must still run b's statements.
	fe := b.PgConn().Frontend()
	sendAll(t, fe,
		&pgproto3.Bind{PreparedStatement: "fails"}, &pgproto3.Execute{},
		&pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Bind{PreparedStatement: "ok"}, &pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "ok"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	got := segments(t, fe, 3)
	want := [][]string{{"error:22012"}, {"row:b own"}, {"row:b ok"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("segments after an error returned %q; want %q (directly on PostgreSQL)", got, want)
	}
}

// A statement whose text only mentions DISCARD or DEALLOCATE (in a string)
// leaves the client's statements working inside its transaction.
func TestTransactionModeLookalikeInsideATransaction(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	c := env.connect(t)
	tx, err := c.Begin(ctx)
	must(t, err)
	var n int
	var s string
	must(t, tx.QueryRow(ctx, "SELECT $1::int", 1).Scan(&n))
	must(t, tx.QueryRow(ctx, "SELECT $1::text || ' discard'", "x").Scan(&s))
	must(t, tx.QueryRow(ctx, "SELECT $1::int", 2).Scan(&n))
	must(t, tx.QueryRow(ctx, "SELECT $1::text || ' deallocate all'", "y").Scan(&s))
	must(t, tx.Commit(ctx))
	if n != 2 || s != "y deallocate all" {
		t.Fatalf("got %d, %q; want 2, %q", n, s, "y deallocate all")
	}
	// And after the transaction, in the next ones.
	for i := range 3 {
		must(t, c.QueryRow(ctx, "SELECT $1::int", i).Scan(&n))
		if n != i {
			t.Fatalf("got %d, want %d", n, i)
		}
	}
}

// rawCopyData is the start of a CopyData message of bodyLen bytes, with
// only sent of them.
func rawCopyData(bodyLen, sent int) []byte {
	msg := []byte{'d', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(msg[1:], uint32(4+bodyLen))
	return append(msg, make([]byte, sent)...)
}

// A client that leaves in the middle of a message leaves the rest owed on
// its server connection, which PostgreSQL would read as the start of the
// next client's messages: such a connection is closed, never handed on.
// The message here is a CopyData outside COPY, which PostgreSQL ignores.
func TestTransactionModeHalfSentMessageIsNotHandedOn(t *testing.T) {
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: mode, poolSize: 1})
			ctx := ctxT(t)
			a := env.connect(t)
			queryStrings(t, a, "SELECT 1")
			_, err := a.PgConn().Conn().Write(rawCopyData(100, 10))
			must(t, err)
			time.Sleep(100 * time.Millisecond) // pgrotate forwards the part
			must(t, a.PgConn().Conn().Close())
			b := env.connect(t)
			bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var user string
			if err := b.QueryRow(bctx, "SELECT current_user", pgx.QueryExecModeSimpleProtocol).Scan(&user); err != nil || user != ownerRole {
				t.Fatalf("the next client's query: %q, %v; want %q", user, err, ownerRole)
			}
		})
	}
}

// PostgreSQL ends a COPY that failed on a bad row at once, while the client
// may still be sending its next CopyData. The transaction is over then, but
// the client's message is not: the connection stays the client's until the
// message is, and another client never reads its rest.
func TestTransactionModeCopyFailingMidMessage(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	a := env.connect(t)
	_, err := a.Exec(ctx, "CREATE TABLE copy_target (n int)")
	must(t, err)
	fe := a.PgConn().Frontend()
	startCopyIn(t, fe, "COPY copy_target FROM STDIN")
	sendAll(t, fe, &pgproto3.CopyData{Data: []byte("not a number\n")})
	_, err = a.PgConn().Conn().Write(rawCopyData(100, 10))
	must(t, err)
	if got := segments(t, fe, 1); fmt.Sprint(got) != fmt.Sprint([][]string{{"error:22P02"}}) {
		t.Fatalf("the failed COPY: %q; want a 22P02 error", got)
	}

	b := env.connect(t)
	done := make(chan error, 1)
	go func() {
		var n int
		err := b.QueryRow(ctx, "SELECT 42", pgx.QueryExecModeSimpleProtocol).Scan(&n)
		if err == nil && n != 42 {
			err = fmt.Errorf("got %d, want 42", n)
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("another client got the connection while a's CopyData was half sent: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	_, err = a.PgConn().Conn().Write(make([]byte, 90)) // the rest of a's message
	must(t, err)
	if got := queryStrings(t, a, "SELECT 'a goes on'"); got[0] != "a goes on" {
		t.Fatalf("a's next query: %q", got)
	}
	must(t, a.Close(ctx))
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the next client got no answer")
	}
}

// startCopyIn sends a COPY … FROM STDIN and reads the server's
// CopyInResponse.
func startCopyIn(t *testing.T, fe *pgproto3.Frontend, sql string) {
	t.Helper()
	sendAll(t, fe, &pgproto3.Query{String: sql})
	if msg, err := fe.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := msg.(*pgproto3.CopyInResponse); !ok {
		t.Fatalf("got %T, want CopyInResponse", msg)
	}
}

// PostgreSQL ends a COPY that fails on a row at once, and then ignores the
// client's CopyData and its CopyDone, which answer nothing. The server
// connection goes back to the pool at the CopyDone (or CopyFail) that
// follows the failure, and the client gets nothing it did not ask for: it
// used to keep the connection until it sent its next message, for as long
// as it stayed idle (a psql session after a failed \copy), and another
// client waited meanwhile.
func TestTransactionModeFailedCopyGivesItsConnectionBack(t *testing.T) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: "transaction", poolSize: 1, goroutineRelay: r.goroutine})
			ctx := ctxT(t)
			a := env.connect(t)
			_, err := a.Exec(ctx, "DROP TABLE IF EXISTS copy_back; CREATE TABLE copy_back (n int)")
			must(t, err)
			fe := a.PgConn().Frontend()
			for _, end := range []pgproto3.FrontendMessage{&pgproto3.CopyDone{}, &pgproto3.CopyFail{Message: "giving up"}} {
				startCopyIn(t, fe, "COPY copy_back FROM STDIN")
				sendAll(t, fe, &pgproto3.CopyData{Data: []byte("not a number\n")})
				if got := segments(t, fe, 1); fmt.Sprint(got) != "[[error:22P02]]" {
					t.Fatalf("the failed COPY: %q; want a 22P02 error", got)
				}
				// Sent after the server ended the COPY, as a client streaming
				// a file sends the rest of it.
				sendAll(t, fe, &pgproto3.CopyData{Data: []byte("1\n")}, end)

				b := env.connect(t)
				bctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				var got string
				err := b.QueryRow(bctx, "SELECT 'b served'", pgx.QueryExecModeSimpleProtocol).Scan(&got)
				cancel()
				if err != nil || got != "b served" {
					t.Fatalf("another client while a is idle after its failed COPY and %T: %q, %v", end, got, err)
				}
				b.Close(ctx)
				if got := queryStrings(t, a, "SELECT 'a goes on'"); got[0] != "a goes on" {
					t.Fatalf("a after its failed COPY and %T: %q", end, got)
				}
			}
		})
	}
}

// A client deallocates one of its statements by the name it gave it, which
// only pgrotate knows (psycopg 3 and Rails do when their statement caches
// are full): the statement is gone for that client, as on PostgreSQL, in
// either protocol and inside a failed transaction too.
func TestTransactionModeDeallocateByName(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	c := env.connect(t)
	for _, extended := range []bool{false, true} {
		_, err := c.PgConn().Prepare(ctx, "Mixed", "SELECT 'mine'::text", nil)
		must(t, err)
		mode := pgx.QueryExecModeSimpleProtocol
		if extended {
			mode = pgx.QueryExecModeExec
		}
		tag, err := c.Exec(ctx, `DEALLOCATE PREPARE "Mixed";`, mode)
		if err != nil || tag.String() != "DEALLOCATE" {
			t.Fatalf("DEALLOCATE of the client's statement (extended %v): %q, %v", extended, tag, err)
		}
		res := c.PgConn().ExecPrepared(ctx, "Mixed", nil, nil, nil).Read()
		if sqlState(res.Err) != "26000" {
			t.Fatalf("running a deallocated statement: %q, %v; want SQLSTATE 26000", res.Rows, res.Err)
		}
	}
	tx, err := c.Begin(ctx)
	must(t, err)
	_, err = c.PgConn().Prepare(ctx, "s1", "SELECT 1", nil)
	must(t, err)
	_, err = tx.Exec(ctx, "SELECT 1/0")
	if sqlState(err) != "22012" {
		t.Fatalf("division by zero: %v", err)
	}
	if _, err := tx.Exec(ctx, "DEALLOCATE s1", pgx.QueryExecModeSimpleProtocol); sqlState(err) != "25P02" {
		t.Fatalf("DEALLOCATE in a failed transaction: %v; want SQLSTATE 25P02", err)
	}
	must(t, tx.Rollback(ctx))
	if got := queryStrings(t, c, "SELECT 'still serving'")[0]; got != "still serving" {
		t.Fatalf("after the failed transaction: %q", got)
	}
}

// A simple Query ends the implicit transaction of extended-protocol messages
// sent before it without a Sync, as Sync would: the transaction is over at
// its ReadyForQuery, and the connection goes to the next client.
func TestTransactionModeQueryAfterUnsyncedMessages(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1, queryWait: "2s"})
	ctx := ctxT(t)
	a, b := env.connect(t), env.connect(t)
	fe := a.PgConn().Frontend()
	sendAll(t, fe, &pgproto3.Parse{Query: "SELECT 'one'"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Query{String: "SELECT 'two'"})
	if got := segments(t, fe, 1); fmt.Sprint(got) != fmt.Sprint([][]string{{"row:one", "row:two"}}) {
		t.Fatalf("unsynced statement, then a query: %q", got)
	}
	var s string
	if err := b.QueryRow(ctx, "SELECT 'b'", pgx.QueryExecModeSimpleProtocol).Scan(&s); err != nil || s != "b" {
		t.Fatalf("the next client: %q, %v; want b (the connection free)", s, err)
	}
}

// pgrotate shares a statement between the clients that prepare the same
// text, under a server-side name of its own. A client that never prepared
// it cannot run, describe or close it by guessing that name.
func TestTransactionModeSharedStatementsAreNotGuessable(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	a, b := env.connect(t), env.connect(t)
	_, err := a.PgConn().Prepare(ctx, "mine", "SELECT 'secret of a'::text", nil)
	must(t, err)
	if res := a.PgConn().ExecPrepared(ctx, "mine", nil, nil, nil).Read(); res.Err != nil {
		t.Fatal(res.Err)
	}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("pgrotate_%d", i)
		if res := b.PgConn().ExecPrepared(ctx, name, nil, nil, nil).Read(); sqlState(res.Err) != "26000" {
			t.Fatalf("b ran %s, which it never prepared: %q, %v; want SQLSTATE 26000", name, res.Rows, res.Err)
		}
		must(t, b.PgConn().Deallocate(ctx, name)) // a Close: harmless, as for any name
	}
	res := a.PgConn().ExecPrepared(ctx, "mine", nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "secret of a" {
		t.Fatalf("a's statement after b's Closes: %q, %v", res.Rows, res.Err)
	}
}

// A named Parse that an error made PostgreSQL skip leaves no statement
// behind, as on a server connection of the client's own: a later Bind of
// it fails (26000). Also when the server connection already holds the
// statement under its shared name, because another client prepared the
// same text, and pgrotate sent the client's Parse as the unnamed one; and
// when the Bind comes in the same pipeline, in the next segment, for a
// statement the connection did not hold.
func TestTransactionModeSkippedParseLeavesNoStatement(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	ctx := ctxT(t)
	const text = "SELECT 'shared text'::text"
	_, err := env.connect(t).PgConn().Prepare(ctx, "theirs", text, nil) // the only connection holds it now
	must(t, err)
	fe := env.connect(t).PgConn().Frontend()
	for _, c := range []struct {
		name, sql string
		pipelined bool
	}{
		{"held", text, false},
		{"fresh", "SELECT 'text of its own'::text", false},
		{"pipelined", "SELECT 'another text'::text", true},
	} {
		parse := []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: "SELEC 1"}, // a syntax error: the rest of the segment is skipped
			&pgproto3.Parse{Name: c.name, Query: c.sql},
			&pgproto3.Sync{},
		}
		bind := []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: c.name}, &pgproto3.Execute{}, &pgproto3.Sync{}}
		var got [][]string
		if c.pipelined {
			sendAll(t, fe, append(parse, bind...)...)
			got = segments(t, fe, 2)
		} else {
			sendAll(t, fe, parse...)
			got = segments(t, fe, 1)
			sendAll(t, fe, bind...)
			got = append(got, segments(t, fe, 1)...)
		}
		if fmt.Sprint(got) != "[[error:42601] [error:26000]]" {
			t.Errorf("%s: the skipped Parse, then a Bind of it: %q; want a 42601, then 26000 as on PostgreSQL", c.name, got)
		}
	}
}

// A Close that an error made PostgreSQL skip closes nothing: the client's
// statement stays, as on a server connection of its own, and a later Bind
// of it runs. One that ran closes it.
func TestTransactionModeSkippedCloseKeepsTheStatement(t *testing.T) {
	env := startProxy(t, setup{poolMode: "transaction", poolSize: 1})
	fe := env.connect(t).PgConn().Frontend()
	var got [][]string
	for _, segment := range [][]pgproto3.FrontendMessage{
		{&pgproto3.Parse{Name: "kept", Query: "SELECT 7"}, &pgproto3.Sync{}},
		{
			&pgproto3.Parse{Query: "SELEC 1"}, // a syntax error: the Close after it is skipped
			&pgproto3.Close{ObjectType: 'S', Name: "kept"},
			&pgproto3.Sync{},
		},
		{&pgproto3.Bind{PreparedStatement: "kept"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
		{&pgproto3.Close{ObjectType: 'S', Name: "kept"}, &pgproto3.Sync{}},
		{&pgproto3.Bind{PreparedStatement: "kept"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
	} {
		sendAll(t, fe, segment...)
		got = append(got, segments(t, fe, 1)...)
	}
	if want := "[[] [error:42601] [row:7] [] [error:26000]]"; fmt.Sprint(got) != want {
		t.Errorf("prepare, skipped Close, Bind, Close, Bind: %q; want %s as on PostgreSQL", got, want)
	}
}
