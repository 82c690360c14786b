package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

// After a session-mode round on the event loop, the client's socket goes
// back to the session unless nothing more will be said to the client: then
// it is closed at once (clientFinished). A lost server, a malformed message
// and a kick all still need the client.
func TestClientFinished(t *testing.T) {
	deadline := os.ErrDeadlineExceeded
	for _, c := range []struct {
		name       string
		cerr, serr error
		want       bool
	}{
		{"Terminate", nil, deadline, true},
		{"client closed", io.EOF, deadline, true},
		{"client reset", syscall.ECONNRESET, deadline, true},
		{"Server.Close", net.ErrClosed, deadline, true},
		{"kicked", deadline, deadline, false},
		{"server lost", deadline, io.EOF, false},
		{"malformed length", errFrameLength, deadline, false},
	} {
		if got := clientFinished(c.cerr, c.serr); got != c.want {
			t.Errorf("%s: clientFinished = %v, want %v", c.name, got, c.want)
		}
	}
}
