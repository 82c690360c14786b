package auth

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Exchange is a SCRAM exchange driven one message at a time by a caller
// that must not block: pgrotate's event loop, which reads and writes the
// client's socket itself. It checks exactly what Authenticate checks and
// fails the same ways; it only leaves the reading and writing to the
// caller.
type Exchange struct {
	x     *scramExchange
	mechs []string
	next  exchangeStep
}

// exchangeStep is the client message an Exchange expects next.
type exchangeStep int

const (
	expectInitial  exchangeStep = iota // SASLInitialResponse
	expectResponse                     // SASLResponse
	exchangeDone
)

// Start begins the exchange for user (see Authenticate for secrets and
// opts) and returns the AuthenticationSASL to send first. ok is false when
// the user's login is not SCRAM (md5 secrets with AllowMD5): the caller
// runs Authenticate instead.
func Start(user string, secrets []Secret, opts Options) (x *Exchange, first pgproto3.BackendMessage, ok bool, err error) {
	m := choose(secrets, opts)
	if m.md5 != nil {
		return nil, nil, false, nil
	}
	x, first, err = startSCRAM(user, m.scram, m.mockReason, opts)
	return x, first, true, err
}

// startSCRAM begins a SCRAM exchange (see authSCRAM for the arguments).
func startSCRAM(user string, secrets []Secret, mockReason string, opts Options) (*Exchange, pgproto3.BackendMessage, error) {
	sx, err := newSCRAMExchange(user, secrets, mockReason, opts)
	if err != nil {
		return nil, nil, err
	}
	x := &Exchange{x: sx, mechs: mechanisms(opts)}
	return x, &pgproto3.AuthenticationSASL{AuthMechanisms: x.mechs}, nil
}

// Receive takes the client's next message, its type byte and body, and
// returns the message to send back: AuthenticationSASLContinue, then
// AuthenticationSASLFinal with done set, after which the caller sends
// AuthenticationOk (in the same write: the client waits for both). Its
// errors are Authenticate's: *FailedError, *ProtocolError, or one wrapping
// ErrClientClosed for Terminate.
func (x *Exchange) Receive(typ byte, body []byte) (reply pgproto3.BackendMessage, done bool, err error) {
	what := "SASLInitialResponse"
	if x.next == expectResponse {
		what = "SASLResponse"
	}
	switch {
	case x.next == exchangeDone:
		return nil, true, protocolErr("message after the exchange ended", nil)
	case typ == 'X':
		return nil, false, fmt.Errorf("receiving %s: %w (Terminate)", what, ErrClientClosed)
	case typ != 'p':
		return nil, false, protocolErr(fmt.Sprintf("expected %s, got message type %q", what, typ), nil)
	}
	if x.next == expectInitial {
		var m pgproto3.SASLInitialResponse
		if err := m.Decode(body); err != nil {
			return nil, false, malformed(what, err)
		}
		cont, err := x.initial(&m)
		if err != nil {
			return nil, false, err
		}
		return cont, false, nil
	}
	var m pgproto3.SASLResponse
	if err := m.Decode(body); err != nil {
		return nil, false, malformed(what, err)
	}
	final, err := x.response(&m)
	if err != nil {
		return nil, false, err
	}
	return final, true, nil
}

// initial answers the client-first-message with the server-first-message.
func (x *Exchange) initial(m *pgproto3.SASLInitialResponse) (*pgproto3.AuthenticationSASLContinue, error) {
	serverFirst, err := x.x.first(m.AuthMechanism, string(m.Data), x.mechs)
	if err != nil {
		return nil, err
	}
	x.next = expectResponse
	return &pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)}, nil
}

// response checks the client-final-message's proof and returns the
// server-final-message.
func (x *Exchange) response(m *pgproto3.SASLResponse) (*pgproto3.AuthenticationSASLFinal, error) {
	serverFinal, err := x.x.final(string(m.Data))
	if err != nil {
		return nil, err
	}
	x.next = exchangeDone
	return &pgproto3.AuthenticationSASLFinal{Data: []byte(serverFinal)}, nil
}
