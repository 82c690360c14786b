package auth

import (
	"fmt"
	"io"
)

// ErrClientClosed is wrapped by the error Authenticate returns when the client
// sent Terminate or closed its connection in the middle of the exchange. It
// wraps io.EOF, so callers that treat io.EOF as a quiet hang-up need nothing
// more. It is not worth more than a quiet log line: psql, for one, hangs up
// after the first authentication request when it must prompt for a password.
var ErrClientClosed = fmt.Errorf("client closed the connection during authentication: %w", io.EOF)

// FailedError is returned when the client did not prove it knows a valid
// password. The proxy maps it to SQLSTATE 28P01
// `password authentication failed for user "<User>"`, the same message for
// every Reason, so that a client learns nothing about why.
type FailedError struct {
	// User is the user name from the startup packet.
	User string
	// Reason is for pgrotate's log only (e.g. "unknown user", "wrong
	// password"); it never contains a secret.
	Reason string
}

// Error implements error.
func (e *FailedError) Error() string {
	return fmt.Sprintf("authentication failed for user %q: %s", e.User, e.Reason)
}

// ProtocolError is returned when the client sent something malformed or
// unexpected during the exchange. The proxy maps it to SQLSTATE 08P01.
type ProtocolError struct {
	// Reason says what was wrong, without echoing client-sent payloads.
	Reason string
	// Err is the underlying decoding error, if any.
	Err error
}

// Error implements error.
func (e *ProtocolError) Error() string {
	if e.Err == nil {
		return "authentication protocol violation: " + e.Reason
	}
	return "authentication protocol violation: " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the underlying decoding error.
func (e *ProtocolError) Unwrap() error { return e.Err }

func protocolErr(reason string, err error) error {
	return &ProtocolError{Reason: reason, Err: err}
}
