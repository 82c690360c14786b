package proxy

import (
	"errors"
	"time"
)

// txRelay is the transaction-pooling part of a client's relay round on the
// event loop: the client is side 0 for the whole round, and side 1 is the
// server connection of the transaction in progress, attached when the
// client's next message needs one and detached at the ReadyForQuery that
// ends the transaction. A message that needs a server connection when none
// is idle (or one that must first be brought to the client's settings)
// parks the client: the round ends before that message, the client
// goroutine waits for a connection the blocking way, and a new round
// resumes with it.
type txRelay struct {
	c *txClient
	r *evRelay
	l *lease // the lease attached as side 1; nil between transactions
	// pc is l's connection, looked up once per transaction (loop only).
	pc *pollConn
	// srvIn inspects the replies of l's transaction.
	srvIn loopServerInspector
	// leaveWhenIdle: Shutdown asked the client to leave; the round ends
	// when its transaction does.
	leaveWhenIdle bool
	// attached: a lease was attached while the client's bytes were being
	// forwarded; its reader may already hold bytes to pass on.
	attached bool
	// waiting: the client is in its pool's loopWaiters since waitStart, not
	// read until a connection is handed to it or waitUntil
	// (query_wait_timeout) passes.
	waiting              bool
	waitStart, waitUntil time.Time
}

// loopClient and loopServerInspector inspect a client's messages and its
// server's replies on the event loop. On the goroutine relay the two
// directions run on two goroutines and share the client's transaction state
// under txClient.mu, which each message takes. On the loop both run on the
// loop goroutine, and nothing else touches that state during a round: the
// session goroutine hands the client over before it (eventLoop.post), and
// the round's end starts the goroutine that takes it back (resumeTx). So a transaction's messages skip
// the lock there: it was about half of the inspectors' time
// (BenchmarkTxStatement, a -M extended statement: 245 ns with it, 121
// without).
type loopClient struct{ *txClient }

func (c loopClient) inspect(typ byte, body []byte) (verdict, error) {
	if typ != 'X' && c.lease != nil && len(c.batch) == 0 {
		return c.route(typ, body)
	}
	return c.txClient.inspect(typ, body) // outside a transaction: as on the goroutine relay
}

type loopServerInspector struct{ txServerInspector }

func (i loopServerInspector) inspect(typ byte, body []byte) (verdict, error) {
	return i.inspectHeld(typ, body)
}

// errOnLoop: the event loop holds the client between its transactions,
// and the session's goroutine ends there. The end of the loop's round
// starts a new one (resumeTx), so that a client idle on the loop costs no
// goroutine: its stack was ~4.3 KiB of the ~10 KiB an idle client cost.
var errOnLoop = errors.New("the event loop holds the client")

// roundEnded is a round on the loop that has ended, and how.
type roundEnded struct {
	r   *evRelay
	res evResult
}

// errPark ends a round on the loop before a client message that needs a
// server connection the loop cannot get without blocking.
var errPark = errors.New("waiting for a server connection")

// errWait stops the client direction of a round before a message that
// needs a server connection while the loop keeps the client waiting for
// one (txRelay.wait).
var errWait = errors.New("waiting on the loop for a server connection")
