package auth

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgproto3"
)

// conn is one client connection during authentication: the pgproto3 Backend
// and the user named in the startup packet.
type conn struct {
	be   *pgproto3.Backend
	user string
}

// send sends msg and flushes it, because the client waits for it before it
// answers.
func (c *conn) send(msg pgproto3.BackendMessage) error {
	c.be.Send(msg)
	if err := c.be.Flush(); err != nil {
		// pgproto3's write error does not unwrap; a failed write during
		// authentication means the client went away or stalled.
		return fmt.Errorf("sending %T: %w: %v", msg, ErrClientClosed, err)
	}
	return nil
}

// receiveAs reads the client's answer to an authentication request of type
// authType (pgproto3 needs it to tell SASLInitialResponse, SASLResponse and
// PasswordMessage apart, which share the 'p' tag). Any other message type
// is a ProtocolError; Terminate wraps ErrClientClosed. The returned message
// aliases pgproto3's read buffer until the next Receive.
func receiveAs[T pgproto3.FrontendMessage](c *conn, authType uint32, what string) (T, error) {
	var zero T
	if err := c.be.SetAuthType(authType); err != nil {
		return zero, fmt.Errorf("receiving %s: %w", what, err)
	}
	msg, err := c.be.Receive()
	if err != nil {
		return zero, receiveError(what, err)
	}
	if m, ok := msg.(T); ok {
		return m, nil
	}
	if _, ok := msg.(*pgproto3.Terminate); ok {
		return zero, fmt.Errorf("receiving %s: %w (Terminate)", what, ErrClientClosed)
	}
	return zero, protocolErr(fmt.Sprintf("expected %s, got %T", what, msg), nil)
}

// receiveError classifies an error from Backend.Receive: the connection
// ending (pgproto3 turns io.EOF while reading into io.ErrUnexpectedEOF),
// other I/O errors such as the proxy's authentication deadline, and
// everything else, which comes from decoding what the client sent.
func receiveError(what string, err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, io.ErrClosedPipe), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("receiving %s: %w: %w", what, ErrClientClosed, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return fmt.Errorf("receiving %s: %w", what, err)
	}
	return malformed(what, err)
}

// malformed is the error for a message of type what that did not decode.
func malformed(what string, err error) error {
	if errors.Is(err, io.EOF) {
		// A decoder ran out of bytes (PasswordMessage without its NUL).
		// Wrapping io.EOF would make it look like a hang-up.
		err = errors.New("message ends early")
	}
	return protocolErr("malformed "+what, err)
}
