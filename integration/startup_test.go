package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"
)

// A startup packet that is no startup packet gets PostgreSQL's own answer
// (its ProcessStartupPacket) rather than a silent close, and the operator
// a log line that says why, on both login paths (the event loop's and a
// goroutine's). A client that closes before sending anything (a TCP health
// check) is not logged.
func TestBadStartupPacketsGetPostgresAnswers(t *testing.T) {
	cases := []struct {
		name, code, message string
		packet              []byte
	}{
		{"an HTTP request", "08P01", "invalid length of startup packet", []byte("GET / HTTP/1.1\r\nHost: db\r\n\r\n")},
		{"a length below the minimum", "08P01", "invalid length of startup packet", []byte{0, 0, 0, 4, 0, 3, 0, 0}},
		{"a length below the minimum, alone", "08P01", "invalid length of startup packet", []byte{0, 0, 0, 4}},
		{"parameters without their terminator", "08P01", "invalid startup packet layout",
			startupPacket(3<<16, "user\x00"+appUser+"\x00database\x00"+dbName)},
		{"a key without a value", "08P01", "invalid startup packet layout", startupPacket(3<<16, "user\x00")},
		{"a parameter without a name", "08P01", "invalid startup packet layout",
			startupPacket(3<<16, "user\x00"+appUser+"\x00\x00\x00\x00")},
		{"protocol 2.0", "0A000", "unsupported frontend protocol 2.0: server supports 3.0 to 3.2",
			startupPacket(2<<16, "user\x00"+appUser+"\x00\x00")},
	}
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) {
			env := startProxy(t, setup{goroutineRelay: r.goroutine})
			for _, tc := range cases {
				e := firstReply(t, env, tc.packet)
				if e.Code != tc.code || e.Message != tc.message {
					t.Errorf("%s: %s %q; want %s %q", tc.name, e.Code, e.Message, tc.code, tc.message)
				}
				env.waitForLog(t, "client session failed", "sqlstate="+tc.code, tc.message)
			}
			c, err := net.Dial("tcp", env.addr)
			must(t, err)
			c.Close()
			env.connect(t).Close(ctxT(t)) // served after all that
			for _, line := range strings.Split(env.logs.String(), "\n") {
				if strings.Contains(line, "EOF") && !strings.Contains(line, "level=DEBUG") {
					t.Errorf("a connection closed before its startup packet was logged above debug: %s", line)
				}
			}
		})
	}
}

// startupPacket is a startup packet of the given protocol version whose
// body after the version is params, as given (terminators included or not).
func startupPacket(version uint32, params string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(params)))
	b = binary.BigEndian.AppendUint32(b, version)
	return append(b, params...)
}

// firstReply sends packet on a new connection and reads the ErrorResponse
// pgrotate answers with.
func firstReply(t *testing.T, env *proxyEnv, packet []byte) *pgproto3.ErrorResponse {
	t.Helper()
	c, err := net.Dial("tcp", env.addr)
	must(t, err)
	defer c.Close()
	must(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Write(packet)
	must(t, err)
	msg, err := pgproto3.NewFrontend(c, c).Receive()
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", packet, err)
	}
	e, ok := msg.(*pgproto3.ErrorResponse)
	if !ok {
		t.Fatalf("answer to %q: %T, want an ErrorResponse", packet, msg)
	}
	return e
}

// A client may ask for a newer protocol than pgrotate speaks, or for
// protocol options (_pq_.*): as PostgreSQL does, pgrotate answers with
// NegotiateProtocolVersion, naming the newest version it speaks (3.2) and
// the options it does not know, and the login goes on. Without this, a
// driver that asks for more than 3.2 would find its connection closed.
// pgx asking for 3.2 (max_protocol_version=latest) logs in and cancels
// as usual.
func TestNewerProtocolVersionsAreNegotiated(t *testing.T) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) {
			env := startProxy(t, setup{goroutineRelay: r.goroutine})
			ctx := ctxT(t)

			cfg, err := pgx.ParseConfig(env.appURL())
			must(t, err)
			asks := &askNewerProtocol{}
			cfg.DialFunc = asks.dial
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatalf("logging in with protocol 3.99 and an option: %v", err)
			}
			defer c.Close(ctx)
			if got := queryStrings(t, c, "SELECT current_user")[0]; got != ownerRole {
				t.Fatalf("current_user %q", got)
			}
			npv := asks.negotiated()
			if npv == nil || npv.NewestMinorProtocol != 2 || len(npv.UnrecognizedOptions) != 1 || npv.UnrecognizedOptions[0] != "_pq_.test_option" {
				t.Fatalf("NegotiateProtocolVersion: %+v; want 3.2 and [_pq_.test_option]", npv)
			}

			c32, err := pgx.Connect(ctx, env.appURL()+"&max_protocol_version=latest")
			if err != nil {
				t.Fatalf("pgx with protocol 3.2: %v", err)
			}
			defer c32.Close(ctx)
			if got := queryStrings(t, c32, "SELECT current_user")[0]; got != ownerRole {
				t.Fatalf("protocol 3.2: current_user %q", got)
			}
			go func() {
				time.Sleep(300 * time.Millisecond)
				_ = c32.PgConn().CancelRequest(ctx)
			}()
			_, err = c32.Exec(ctx, "SELECT pg_sleep(20)")
			if sqlState(err) != "57014" {
				t.Fatalf("protocol 3.2: a cancelled pg_sleep: %v; want 57014", err)
			}
		})
	}
}

// askNewerProtocol dials for pgx and rewrites its startup packet to ask for
// protocol 3.99 with a protocol option, and keeps what pgrotate answers
// first.
type askNewerProtocol struct {
	mu    sync.Mutex
	first []byte
}

func (a *askNewerProtocol) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &newerProtocolConn{Conn: c, a: a}, nil
}

// negotiated is the NegotiateProtocolVersion pgrotate sent first, if it did.
func (a *askNewerProtocol) negotiated() *pgproto3.NegotiateProtocolVersion {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.first) < 5 || a.first[0] != 'v' {
		return nil
	}
	n := int(binary.BigEndian.Uint32(a.first[1:5])) + 1
	if len(a.first) < n {
		return nil
	}
	var m pgproto3.NegotiateProtocolVersion
	if m.Decode(a.first[5:n]) != nil {
		return nil
	}
	return &m
}

type newerProtocolConn struct {
	net.Conn
	a             *askNewerProtocol
	wrote, readUp bool
}

func (c *newerProtocolConn) Write(b []byte) (int, error) {
	if c.wrote || len(b) < 8 || binary.BigEndian.Uint32(b[4:8]) != pgproto3.ProtocolVersion30 {
		return c.Conn.Write(b)
	}
	c.wrote = true
	params := append([]byte("_pq_.test_option\x00on\x00"), b[8:]...)
	if _, err := c.Conn.Write(startupPacket(3<<16|99, string(params))); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *newerProtocolConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if !c.readUp && n > 0 {
		c.a.mu.Lock()
		c.a.first = append(c.a.first, b[:n]...)
		c.readUp = len(c.a.first) >= 64 || bytes.IndexByte(c.a.first, 'R') >= 0
		c.a.mu.Unlock()
	}
	return n, err
}

// A client may send its first query in the same write as its last
// authentication message, without waiting for ReadyForQuery (PostgreSQL
// answers both). The query used to be lost on the goroutine login path:
// the reader of the authentication had read it ahead and kept it.
func TestQueryRightBehindTheLogin(t *testing.T) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: "transaction", goroutineRelay: r.goroutine})
			c, err := net.Dial("tcp", env.addr)
			must(t, err)
			defer c.Close()
			must(t, c.SetDeadline(time.Now().Add(10*time.Second)))
			fe := pgproto3.NewFrontend(c, c)
			sendAll(t, fe, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
				Parameters: map[string]string{"user": appUser, "database": dbName}})
			expect[*pgproto3.AuthenticationSASL](t, fe)
			client, err := scram.SHA256.NewClient(appUser, appPass, "")
			must(t, err)
			conv := client.NewConversation()
			first, err := conv.Step("")
			must(t, err)
			sendAll(t, fe, &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte(first)})
			cont := expect[*pgproto3.AuthenticationSASLContinue](t, fe)
			final, err := conv.Step(string(cont.Data))
			must(t, err)
			sendAll(t, fe, &pgproto3.SASLResponse{Data: []byte(final)}, &pgproto3.Query{String: "SELECT 42"})
			if got := segments(t, fe, 2); fmt.Sprint(got) != "[[] [row:42]]" {
				t.Fatalf("login and the query sent with its last message: %q; want the greeting, then 42", got)
			}
		})
	}
}

// expect reads fe's next message, which must be a T.
func expect[T pgproto3.BackendMessage](t *testing.T, fe *pgproto3.Frontend) T {
	t.Helper()
	msg, err := fe.Receive()
	must(t, err)
	m, ok := msg.(T)
	if !ok {
		t.Fatalf("got %T, want %T", msg, *new(T))
	}
	return m
}
