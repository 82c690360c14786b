package auth

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"
)

// TestExchange is the matrix of what a client can do during authentication
// and what Authenticate makes of it.
func TestExchange(t *testing.T) {
	old, _ := NewSCRAMVerifier("old", 0)
	overlap, _ := NewSCRAMVerifierWithSalt("new", mustParse(t, old).Salt(), 4096)
	otherSalt, _ := NewSCRAMVerifier("other", 0)
	app := []Secret{mustParse(t, old), mustParse(t, overlap), mustParse(t, otherSalt)}
	binding := []byte("0123456789abcdef0123456789abcdef")
	withTLS := Options{ChannelBinding: binding}

	ok := func(t *testing.T, err error) {
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
	}
	failed := func(reason string) func(*testing.T, error) {
		return func(t *testing.T, err error) { wantFailed(t, err, "app", reason) }
	}
	scramLogin := func(s scramScript) func(*pipeClient) { return s.run }

	tests := []struct {
		name    string
		secrets []Secret
		opts    Options
		client  func(*pipeClient)
		check   func(*testing.T, error)
	}{
		{"first of several secrets", app, Options{}, scramLogin(scramScript{password: "old"}), ok},
		{"second secret with the same salt", app, Options{}, scramLogin(scramScript{password: "new"}), ok},
		{"secret with another salt is not checked", app, Options{}, scramLogin(scramScript{password: "other"}), failed("wrong password")},
		{"wrong password", app, Options{}, scramLogin(scramScript{password: "nope"}), failed("wrong password")},
		{"unknown user", nil, Options{}, scramLogin(scramScript{password: "old"}), failed("unknown user")},
		{"md5 only, md5 not allowed", []Secret{mustParse(t, MD5Secret("app", "old"))}, Options{}, scramLogin(scramScript{password: "old"}), failed("md5 secret but md5 not allowed")},

		{"malformed client-first-message", app, Options{}, scramLogin(scramScript{password: "old", first: func(string) string { return "garbage" }}), wantProtocolError},
		{"empty client-first-message", app, Options{}, scramLogin(scramScript{password: "old", first: func(string) string { return "" }}), wantProtocolError},
		{"authorization identity", app, Options{}, scramLogin(scramScript{password: "old", first: func(s string) string { return strings.Replace(s, "n,,", "n,a=admin,", 1) }}), wantProtocolError},
		{"SCRAM user name is ignored", app, Options{}, scramLogin(scramScript{user: "someone", password: "old"}), ok},
		{"wrong mechanism name", app, Options{}, scramLogin(scramScript{password: "old", mech: "SCRAM-SHA-1"}), wantProtocolError},
		{"PLUS not offered without TLS", app, Options{}, scramLogin(scramScript{password: "old", mech: mechSCRAMPlus}), wantProtocolError},
		{"malformed proof", app, Options{}, scramLogin(scramScript{password: "old", final: func(s string) string { return s[:strings.LastIndex(s, "p=")] + "p=!!!" }}), wantProtocolError},
		{"short proof", app, Options{}, scramLogin(scramScript{password: "old", final: func(s string) string {
			return s[:strings.LastIndex(s, "p=")] + "p=" + base64.StdEncoding.EncodeToString(make([]byte, 16))
		}}), wantProtocolError},
		{"nonce not the server's", app, Options{}, scramLogin(scramScript{password: "old", final: func(s string) string { return strings.Replace(s, ",r=", ",r=x", 1) }}), wantProtocolError},
		{"client-final-message without proof", app, Options{}, scramLogin(scramScript{password: "old", final: func(string) string { return "c=biws" }}), wantProtocolError},

		{"TLS, client without binding support", app, withTLS, scramLogin(scramScript{password: "old"}), ok},
		{"TLS, PLUS with the right binding", app, withTLS, scramLogin(scramScript{password: "old", mech: mechSCRAMPlus, newConv: bindTo(binding)}), ok},
		{"TLS, PLUS with another binding", app, withTLS, scramLogin(scramScript{password: "old", mech: mechSCRAMPlus, newConv: bindTo([]byte("another certificate hash 0123456"))}), failed("channel binding mismatch")},
		{"TLS, PLUS with the right binding, unknown user", nil, withTLS, scramLogin(scramScript{password: "old", mech: mechSCRAMPlus, newConv: bindTo(binding)}), failed("unknown user")},
		{"TLS, downgrade: client supports binding but did not see PLUS", app, withTLS, scramLogin(scramScript{password: "old", newConv: (*scram.Client).NewConversationAdvertisingChannelBinding}), failed("client chose SCRAM-SHA-256 without binding although it supports it")},
		{"TLS, PLUS chosen without binding", app, withTLS, scramLogin(scramScript{password: "old", mech: mechSCRAMPlus}), wantProtocolError},
		{"TLS, binding sent with plain SCRAM-SHA-256", app, withTLS, scramLogin(scramScript{password: "old", newConv: bindTo(binding)}), wantProtocolError},
		{"TLS, unsupported binding type", app, withTLS, scramLogin(scramScript{password: "old", mech: mechSCRAMPlus, newConv: func(c *scram.Client) *scram.ClientConversation {
			return c.NewConversationWithChannelBinding(scram.NewTLSUniqueBinding(binding))
		}}), wantProtocolError},

		{"query instead of SASLInitialResponse", app, Options{}, answerWith(&pgproto3.Query{String: "select 1"}), wantProtocolError},
		{"sync instead of SASLResponse", app, Options{}, syncAfterContinue, wantProtocolError},
		{"truncated SASLInitialResponse", app, Options{}, answerRaw([]byte{'p', 0, 0, 0, 9, 'S', 'C', 'R', 'A', 'M'}), wantProtocolError},
		{"Terminate instead of SASLInitialResponse", app, Options{}, answerWith(&pgproto3.Terminate{}), wantClientClosed},
		{"client hangs up after AuthenticationSASL", app, Options{}, answerWith(nil), wantClientClosed},
		{"client hangs up after server-first-message", app, Options{}, hangUpAfterContinue, wantClientClosed},

		{"md5 allowed, query instead of password", []Secret{mustParse(t, MD5Secret("app", "old"))}, Options{AllowMD5: true}, answerWith(&pgproto3.Query{String: "select 1"}), wantProtocolError},
		{"md5 allowed, password not null-terminated", []Secret{mustParse(t, MD5Secret("app", "old"))}, Options{AllowMD5: true}, answerRaw([]byte{'p', 0, 0, 0, 7, 'm', 'd', '5'}), wantProtocolError},
		{"md5 allowed, several md5 secrets", []Secret{mustParse(t, MD5Secret("app", "old")), mustParse(t, MD5Secret("app", "new"))}, Options{AllowMD5: true}, md5Login("app", "new"), ok},
		{"md5 allowed, wrong password", []Secret{mustParse(t, MD5Secret("app", "old"))}, Options{AllowMD5: true}, md5Login("app", "new"), failed("wrong password")},
		{"md5 allowed, plaintext password sent", []Secret{mustParse(t, MD5Secret("app", "old"))}, Options{AllowMD5: true}, answerWith(&pgproto3.PasswordMessage{Password: "old"}), failed("wrong password")},
		{"md5 allowed, Terminate", []Secret{mustParse(t, MD5Secret("app", "old"))}, Options{AllowMD5: true}, answerWith(&pgproto3.Terminate{}), wantClientClosed},
	}
	// Each case runs against Authenticate (a session goroutine) and an
	// Exchange (the event loop): the two must not differ.
	for _, srv := range []struct {
		name string
		run  server
	}{{"Authenticate", blocking}, {"Exchange", stepped}} {
		for _, tt := range tests {
			t.Run(srv.name+"/"+tt.name, func(t *testing.T) {
				c := startPipeWith(t, srv.run, "app", tt.secrets, tt.opts)
				tt.client(c)
				err := c.finish()
				t.Logf("%s: %v", srv.name, err)
				tt.check(t, err)
			})
		}
	}
}

func bindTo(data []byte) func(*scram.Client) *scram.ClientConversation {
	return func(c *scram.Client) *scram.ClientConversation {
		return c.NewConversationWithChannelBinding(scram.ChannelBinding{Type: scram.ChannelBindingTLSServerEndpoint, Data: data})
	}
}

// answerWith reads the server's first request and answers it with msg, or
// hangs up when msg is nil.
func answerWith(msg pgproto3.FrontendMessage) func(*pipeClient) {
	return func(c *pipeClient) {
		if _, err := c.receive(); err != nil {
			c.t.Fatal(err)
		}
		if msg != nil {
			_ = c.send(msg)
		}
	}
}

// answerRaw answers the server's first request with raw bytes.
func answerRaw(b []byte) func(*pipeClient) {
	return func(c *pipeClient) {
		if _, err := c.receive(); err != nil {
			c.t.Fatal(err)
		}
		_, _ = c.conn.Write(b)
	}
}

// syncAfterContinue answers the server-first-message with a Sync.
func syncAfterContinue(c *pipeClient) {
	client, _ := scram.SHA256.NewClientUnprepped("", "old", "")
	clientFirst, _ := client.NewConversation().Step("")
	for _, msg := range []pgproto3.FrontendMessage{&pgproto3.SASLInitialResponse{AuthMechanism: mechSCRAM, Data: []byte(clientFirst)}, &pgproto3.Sync{}} {
		if _, err := c.receive(); err != nil {
			c.t.Fatal(err)
		}
		_ = c.send(msg)
	}
}

func hangUpAfterContinue(c *pipeClient) {
	scramScript{password: "old", final: func(s string) string {
		c.conn.Close()
		return s
	}}.run(c)
}

// md5Login answers AuthenticationMD5Password as libpq and pgx do.
func md5Login(user, password string) func(*pipeClient) {
	return func(c *pipeClient) {
		msg, err := c.receive()
		req, ok := msg.(*pgproto3.AuthenticationMD5Password)
		if err != nil || !ok {
			c.t.Fatalf("want AuthenticationMD5Password, got %T %v", msg, err)
		}
		_ = c.send(&pgproto3.PasswordMessage{Password: md5Response(MD5Secret(user, password)[3:], req.Salt)})
	}
}

// TestUnknownUserLooksLikeAWrongPassword: a client sees the same messages,
// with a salt as stable as a real one, whether the user is unknown or the
// password wrong.
func TestUnknownUserLooksLikeAWrongPassword(t *testing.T) {
	verifier, _ := NewSCRAMVerifier("pw", 0)
	known := []Secret{mustParse(t, verifier)}
	key := []byte("replica-shared mock key")
	attempt := func(user string, secrets []Secret, opts Options) (salt string, kinds []string) {
		c := startPipe(t, user, secrets, opts)
		scramScript{password: "nope", seen: func(t *testing.T, msgs []pgproto3.BackendMessage) {
			for _, m := range msgs {
				kinds = append(kinds, strings.TrimPrefix(typeName(m), "*pgproto3."))
				if cont, ok := m.(*pgproto3.AuthenticationSASLContinue); ok {
					_, after, _ := strings.Cut(string(cont.Data), ",s=")
					salt = after
				}
			}
		}}.run(c)
		if err := c.finish(); err == nil {
			t.Fatal("wrong password accepted")
		}
		return salt, kinds
	}
	knownSalt, knownKinds := attempt("app", known, Options{})
	ghostSalt, ghostKinds := attempt("ghost", nil, Options{})
	ghostAgain, _ := attempt("ghost", nil, Options{})
	phantom, _ := attempt("phantom", nil, Options{})
	ghostKeyed, _ := attempt("ghost", nil, Options{MockSaltKey: key})
	ghostKeyedAgain, _ := attempt("ghost", nil, Options{MockSaltKey: key})

	if strings.Join(knownKinds, ",") != strings.Join(ghostKinds, ",") {
		t.Errorf("unknown user saw %v, wrong password saw %v", ghostKinds, knownKinds)
	}
	if !strings.HasSuffix(ghostSalt, ",i=4096") || len(ghostSalt) != len(knownSalt) {
		t.Errorf("mock salt and iterations %q do not look like a real %q", ghostSalt, knownSalt)
	}
	if ghostSalt != ghostAgain || ghostKeyed != ghostKeyedAgain {
		t.Error("the mock salt changes between attempts; a real salt never does")
	}
	if ghostSalt == phantom || ghostSalt == ghostKeyed {
		t.Error("the mock salt does not depend on the user and the key")
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *pgproto3.AuthenticationSASL:
		return "AuthenticationSASL"
	case *pgproto3.AuthenticationSASLContinue:
		return "AuthenticationSASLContinue"
	case *pgproto3.AuthenticationSASLFinal:
		return "AuthenticationSASLFinal"
	}
	return "other"
}

// TestOffersPLUSFirstOverTLS checks the mechanism list PostgreSQL sends.
func TestOffersPLUSFirstOverTLS(t *testing.T) {
	for _, tt := range []struct {
		binding []byte
		want    string
	}{{nil, "SCRAM-SHA-256"}, {[]byte("hash"), "SCRAM-SHA-256-PLUS,SCRAM-SHA-256"}} {
		c := startPipe(t, "app", nil, Options{ChannelBinding: tt.binding})
		msg, err := c.receive()
		sasl, ok := msg.(*pgproto3.AuthenticationSASL)
		if err != nil || !ok {
			t.Fatalf("want AuthenticationSASL, got %T %v", msg, err)
		}
		if got := strings.Join(sasl.AuthMechanisms, ","); got != tt.want {
			t.Errorf("offered %s, want %s", got, tt.want)
		}
		wantClientClosed(t, c.finish())
	}
}

// TestRandomnessFailure: without randomness there is no safe exchange, and
// nothing is sent.
func TestRandomnessFailure(t *testing.T) {
	for _, opts := range []Options{{Rand: failingReader{}}, {Rand: failingReader{}, AllowMD5: true}} {
		c := startPipe(t, "app", []Secret{mustParse(t, MD5Secret("app", "pw"))}, opts)
		err := c.finish()
		var failed *FailedError
		var pe *ProtocolError
		if err == nil || errors.As(err, &failed) || errors.As(err, &pe) || errors.Is(err, ErrClientClosed) {
			t.Errorf("Authenticate returned %v, want a plain error", err)
		}
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy source broken") }

// Authenticate leaves AuthenticationSASLFinal queued on the Backend: the
// caller sends it with AuthenticationOk and the rest of its greeting, in
// one write (a login then wakes the client once, not twice).
func TestSASLFinalGoesOutWithTheGreeting(t *testing.T) {
	verifier, _ := NewSCRAMVerifier("pw", 0)
	server, client := net.Pipe()
	defer client.Close()
	defer server.Close()
	be := pgproto3.NewBackend(server, server)
	done := make(chan error, 1)
	go func() { done <- Authenticate(be, "app", []Secret{mustParse(t, verifier)}, Options{}) }()

	fe := pgproto3.NewFrontend(client, client)
	sc, err := scram.SHA256.NewClientUnprepped("", "pw", "")
	if err != nil {
		t.Fatal(err)
	}
	conv := sc.NewConversation()
	if msg, err := fe.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := msg.(*pgproto3.AuthenticationSASL); !ok {
		t.Fatalf("got %T, want AuthenticationSASL", msg)
	}
	first, _ := conv.Step("")
	fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: mechSCRAM, Data: []byte(first)})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err := fe.Receive()
	cont, ok := msg.(*pgproto3.AuthenticationSASLContinue)
	if err != nil || !ok {
		t.Fatalf("got %T %v, want AuthenticationSASLContinue", msg, err)
	}
	final, _ := conv.Step(string(cont.Data))
	fe.Send(&pgproto3.SASLResponse{Data: []byte(final)})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
	case <-time.After(5 * time.Second): // a pipe's Write waits for a Read
		t.Fatal("Authenticate did not return: it is writing AuthenticationSASLFinal on its own")
	}

	go func() {
		be.Send(&pgproto3.AuthenticationOk{})
		done <- be.Flush()
	}()
	// A pipe's Read returns what one Write wrote: both messages, so neither
	// went out on its own.
	buf := make([]byte, 4096)
	n, err := client.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var codes []uint32
	for b := buf[:n]; len(b) >= 9 && b[0] == 'R'; {
		size := 1 + int(binary.BigEndian.Uint32(b[1:5]))
		codes = append(codes, binary.BigEndian.Uint32(b[5:9]))
		b = b[min(size, len(b)):]
	}
	if !slices.Equal(codes, []uint32{pgproto3.AuthTypeSASLFinal, pgproto3.AuthTypeOk}) {
		t.Fatalf("one write carried authentication requests %v; want SASLFinal (12) and Ok (0)", codes)
	}
}
