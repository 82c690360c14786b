package auth

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"
)

// pipeClient drives Authenticate from the client end of a net.Pipe with
// hand-made messages, for the protocol edges no well-behaved client reaches.
type pipeClient struct {
	t    *testing.T
	conn net.Conn
	fe   *pgproto3.Frontend
	done chan error
}

func startPipe(t *testing.T, user string, secrets []Secret, opts Options) *pipeClient {
	return startPipeWith(t, blocking, user, secrets, opts)
}

// server runs one authentication on the server end of a connection.
type server func(conn net.Conn, user string, secrets []Secret, opts Options) error

// blocking runs Authenticate, as a session goroutine does.
func blocking(conn net.Conn, user string, secrets []Secret, opts Options) error {
	be := pgproto3.NewBackend(conn, skipEmpty{conn})
	err := Authenticate(be, user, secrets, opts)
	if err == nil {
		err = be.Flush() // the queued SASLFinal, which the caller flushes with its greeting
	}
	return err
}

// stepped runs an Exchange as the event loop does: it reads whole messages
// and hands them over as they are, and writes each reply at once. A login
// an Exchange does not run (md5) runs Authenticate, as in the proxy.
func stepped(conn net.Conn, user string, secrets []Secret, opts Options) error {
	x, first, ok, err := Start(user, secrets, opts)
	if err != nil {
		return err
	}
	if !ok {
		return blocking(conn, user, secrets, opts)
	}
	for reply := first; ; {
		out, _ := reply.Encode(nil)
		if _, err := conn.Write(out); err != nil {
			return fmt.Errorf("%w: %v", ErrClientClosed, err)
		}
		var hdr [5]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return fmt.Errorf("%w: %v", ErrClientClosed, err)
		}
		body := make([]byte, int(binary.BigEndian.Uint32(hdr[1:]))-4)
		if _, err := io.ReadFull(conn, body); err != nil {
			return fmt.Errorf("%w: %v", ErrClientClosed, err)
		}
		var done bool
		if reply, done, err = x.Receive(hdr[0], body); err != nil || done {
			if done {
				out, _ := reply.Encode(nil)
				_, err = conn.Write(out)
			}
			return err
		}
	}
}

func startPipeWith(t *testing.T, run server, user string, secrets []Secret, opts Options) *pipeClient {
	t.Helper()
	serverConn, clientConn := net.Pipe()
	c := &pipeClient{t: t, conn: clientConn, fe: pgproto3.NewFrontend(clientConn, clientConn), done: make(chan error, 1)}
	go func() {
		defer serverConn.Close()
		c.done <- run(serverConn, user, secrets, opts)
	}()
	t.Cleanup(func() { clientConn.Close(); <-c.done; c.done <- nil })
	return c
}

// send sends msg. A send error is returned, not fatal: the server may
// already have given up.
func (c *pipeClient) send(msg pgproto3.FrontendMessage) error {
	c.fe.Send(msg)
	return c.fe.Flush()
}

// receive returns the next message, or an error once the server has ended
// the exchange and closed its end.
func (c *pipeClient) receive() (pgproto3.BackendMessage, error) {
	return c.fe.Receive()
}

// finish closes the client end and returns what Authenticate returned.
func (c *pipeClient) finish() error {
	c.conn.Close()
	err := <-c.done
	c.done <- err // for the cleanup
	return err
}

// scramScript is a SCRAM client built on xdg-go/scram's client, with hooks
// to spoil its messages.
type scramScript struct {
	user     string // SCRAM user name; PostgreSQL clients send none
	password string
	mech     string                                             // default SCRAM-SHA-256
	newConv  func(*scram.Client) *scram.ClientConversation      // default NewConversation
	first    func(string) string                                // rewrites client-first-message
	final    func(string) string                                // rewrites client-final-message
	seen     func(t *testing.T, msgs []pgproto3.BackendMessage) // sees what the server sent
}

func (s scramScript) run(c *pipeClient) {
	var seen []pgproto3.BackendMessage
	defer func() {
		if s.seen != nil {
			s.seen(c.t, seen)
		}
	}()
	client, err := scram.SHA256.NewClientUnprepped(s.user, s.password, "")
	if err != nil {
		c.t.Fatal(err)
	}
	conv := client.NewConversation()
	if s.newConv != nil {
		conv = s.newConv(client)
	}
	msg, err := c.receive()
	if _, ok := msg.(*pgproto3.AuthenticationSASL); err != nil || !ok {
		c.t.Fatalf("want AuthenticationSASL, got %T %v", msg, err)
	}
	seen = append(seen, msg)
	clientFirst, _ := conv.Step("")
	if err := c.send(&pgproto3.SASLInitialResponse{AuthMechanism: or(s.mech, mechSCRAM), Data: []byte(rewrite(s.first, clientFirst))}); err != nil {
		return
	}
	msg, err = c.receive()
	cont, ok := msg.(*pgproto3.AuthenticationSASLContinue)
	if err != nil || !ok {
		return
	}
	seen = append(seen, &pgproto3.AuthenticationSASLContinue{Data: append([]byte(nil), cont.Data...)})
	clientFinal, err := conv.Step(string(cont.Data))
	if err != nil {
		c.t.Fatalf("client rejected server-first-message: %v", err)
	}
	if err := c.send(&pgproto3.SASLResponse{Data: []byte(rewrite(s.final, clientFinal))}); err != nil {
		return
	}
	msg, err = c.receive()
	if fin, ok := msg.(*pgproto3.AuthenticationSASLFinal); err == nil && ok {
		seen = append(seen, msg)
		// The client checks the server signature: the server proved it
		// holds the verifier.
		if _, err := conv.Step(string(fin.Data)); err != nil || !conv.Valid() {
			c.t.Errorf("client rejected server-final-message: %v", err)
		}
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func rewrite(f func(string) string, s string) string {
	if f == nil {
		return s
	}
	return f(s)
}

func wantProtocolError(t *testing.T, err error) {
	t.Helper()
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("Authenticate returned %v, want a ProtocolError", err)
	}
	if errors.Is(err, io.EOF) {
		t.Errorf("ProtocolError %v passes for a hang-up (io.EOF)", err)
	}
}

func wantClientClosed(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrClientClosed) || !errors.Is(err, io.EOF) {
		t.Fatalf("Authenticate returned %v, want ErrClientClosed, which is an io.EOF", err)
	}
}

// skipEmpty drops the empty write of a Flush with nothing queued (md5): on
// a pipe it would wait for a client that reads nothing more.
type skipEmpty struct{ net.Conn }

func (w skipEmpty) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return w.Conn.Write(b)
}
