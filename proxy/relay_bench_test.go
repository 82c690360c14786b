package proxy

import (
	"bytes"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// loopReader replays one reply forever, as a server answering the same
// query would, without allocating.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

// BenchmarkRelayServerReply measures forwarding a result of 100 DataRows and
// its ReadyForQuery: the relay must not allocate per message (run with
// -benchmem: 0 allocs/op is the contract).
func BenchmarkRelayServerReply(b *testing.B) {
	msgs := []pgproto3.Message{&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("abalance")}}}}
	for range 100 {
		msgs = append(msgs, &pgproto3.DataRow{Values: [][]byte{[]byte("12345"), bytes.Repeat([]byte("x"), 80)}})
	}
	msgs = append(msgs, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 100")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	reply := encode(b, msgs...)
	rd := newFrameReader(&loopReader{data: reply}, defaultBufSize)
	st := &relayState{}
	in := serverInspector{st: st, sc: &serverConn{params: map[string]string{}}, m: (*Metrics)(nil).forDatabase("bench")}
	var stopAtIdle inspector = stopAtReady{in} // boxed once, as the relay does per session
	b.SetBytes(int64(len(reply)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := rd.pump(io.Discard, fromServer, stopAtIdle); err != nil {
			b.Fatal(err)
		}
	}
}

// stopAtReady ends each pump at ReadyForQuery, as transaction pooling will.
type stopAtReady struct{ serverInspector }

func (s stopAtReady) inspect(typ byte, body []byte) (verdict, error) {
	v, err := s.serverInspector.inspect(typ, body)
	if typ == 'Z' {
		return forwardStop, err
	}
	return v, err
}

// BenchmarkRelayClientQuery measures a client's request on the event loop's
// path (fill, forward, release of a lazy reader): a request that arrives
// whole is forwarded from the reader's small array, taking no pooled buffer.
func BenchmarkRelayClientQuery(b *testing.B) {
	query := encode(b, &pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"})
	rd := newClientReader(&loopReader{data: query})
	var in inspector = passInspector{}
	b.SetBytes(int64(len(query)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := rd.fill(1); err != nil {
			b.Fatal(err)
		}
		if _, _, err := rd.forward(io.Discard, fromClient, in); err != nil {
			b.Fatal(err)
		}
		rd.release()
	}
}

// passInspector looks at nothing and lets everything through.
type passInspector struct{}

func (passInspector) inspect(byte, []byte) (verdict, error) { return forward, nil }

// BenchmarkRelayClientExtended measures an extended-protocol request (what
// pgbench -M extended sends) through the session relay's inspector with the
// role guard on: the Parse text is checked and kept as the unnamed statement
// (for a move), in a buffer reused from request to request.
func BenchmarkRelayClientExtended(b *testing.B) {
	req := encode(b,
		&pgproto3.Parse{Query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("12345")}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	rd := newClientReader(&loopReader{data: req})
	ci := &clientInspector{st: newRelayState(), guard: newRoleGuard("bookstore_owner"), m: (*Metrics)(nil).forDatabase("bench")}
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := rd.fill(1); err != nil {
			b.Fatal(err)
		}
		if _, _, err := rd.forward(io.Discard, fromClientGuarded, ci); err != nil {
			b.Fatal(err)
		}
		rd.release()
		ci.st.pending.Store(0)
	}
}
