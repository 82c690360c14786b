package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// testServer is the smallest PostgreSQL front door that pgconn accepts: it
// answers SSLRequest (TLS when tlsConfig is set), reads the startup packet,
// runs Authenticate, and sends AuthenticationOk and ReadyForQuery, or an
// ErrorResponse as the proxy would. It lets pgx's real SCRAM, SCRAM-PLUS and
// md5 clients log in through Authenticate.
type testServer struct {
	ln      net.Listener
	secrets map[string][]Secret
	opts    Options
	tls     *tls.Config
	results chan error
	wg      sync.WaitGroup
}

func startTestServer(t *testing.T, secrets map[string][]Secret, opts Options, tlsConfig *tls.Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{ln: ln, secrets: secrets, opts: opts, tls: tlsConfig, results: make(chan error, 16)}
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *testServer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			// A safety net so a broken test cannot hang; never a pass/fail timing.
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			s.results <- s.serve(c)
		}()
	}
}

func (s *testServer) serve(c net.Conn) error {
	be := pgproto3.NewBackend(c, c)
	msg, err := be.ReceiveStartupMessage()
	if err != nil {
		return err
	}
	if _, ok := msg.(*pgproto3.SSLRequest); ok {
		if c, be, err = s.answerSSL(c); err != nil {
			return err
		}
		if msg, err = be.ReceiveStartupMessage(); err != nil {
			return err
		}
	}
	startup, ok := msg.(*pgproto3.StartupMessage)
	if !ok {
		return errors.New("test server: expected a StartupMessage")
	}
	user := startup.Parameters["user"]
	if err := Authenticate(be, user, s.secrets[user], s.opts); err != nil {
		be.Send(errorResponse(err))
		_ = be.Flush()
		return err
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		return err
	}
	_, _ = be.Receive() // wait for pgconn's Terminate
	return nil
}

func (s *testServer) answerSSL(c net.Conn) (net.Conn, *pgproto3.Backend, error) {
	if s.tls == nil {
		_, err := c.Write([]byte{'N'})
		return c, pgproto3.NewBackend(c, c), err
	}
	if _, err := c.Write([]byte{'S'}); err != nil {
		return nil, nil, err
	}
	tc := tls.Server(c, s.tls)
	if err := tc.Handshake(); err != nil {
		return nil, nil, err
	}
	return tc, pgproto3.NewBackend(tc, tc), nil
}

// errorResponse maps errors the way the proxy does.
func errorResponse(err error) *pgproto3.ErrorResponse {
	var failed *FailedError
	if errors.As(err, &failed) {
		return &pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "` + failed.User + `"`}
	}
	return &pgproto3.ErrorResponse{Severity: "FATAL", Code: "08P01", Message: "protocol violation"}
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

// result returns what Authenticate returned for the next finished connection.
func (s *testServer) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.results:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("test server: no connection finished")
		return nil
	}
}

// connect logs in with pgx's pgconn and closes the connection again.
func connect(t *testing.T, connString string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, connString)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}
