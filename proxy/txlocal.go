package proxy

import (
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Between transactions a client holds no server connection. libpq's
// PQprepare (pgbench -M prepared among others) sends Parse and Sync and
// blocks until they are answered; pgbench does it from the thread that also
// drives its other clients, which may hold every server connection in open
// transactions. Waiting for a server there would deadlock the app, so
// pgrotate answers such a batch itself: it records the statement, replies
// ParseComplete and ReadyForQuery 'I', and prepares the statement on a server
// when a Bind or Describe needs it. A syntax error therefore surfaces at the
// statement's first use instead of at PQprepare.

// answerLocally handles a client message without a server connection when
// it can: a named Parse (deferred into c.batch), the Sync ending a batch
// of them, and the CopyDone or CopyFail of a COPY the server ended already.
// done=false means the message needs a server connection.
func (c *txClient) answerLocally(typ byte, body []byte) (v verdict, done bool, err error) {
	if typ != 'P' && typ != 'S' && typ != 'c' && typ != 'f' {
		return forward, false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lease != nil {
		return forward, false, nil
	}
	switch typ {
	case 'c', 'f':
		// The end of a COPY that the server ended already, which
		// PostgreSQL would ignore (see copyEnds): no server needs it.
		return dropContinue, true, nil
	case 'P':
		name, rest, ok := cstring(body)
		query, _, _ := cstring(rest)
		m := scanText(query)
		if !ok || len(name) == 0 || m.role {
			return forward, false, nil // the unnamed statement, or one for the role guard
		}
		cs := c.register(body, m)
		if cs == nil {
			return forward, false, nil
		}
		c.batch = append(c.batch, cs)
		return dropContinue, true, nil
	case 'S':
		if len(c.batch) == 0 {
			return forward, false, nil
		}
		c.awaitWrites()
		return dropContinue, true, c.replyBatch()
	}
	return forward, false, nil
}

// replyBatch answers the deferred Parses and their Sync. No server goroutine
// runs, so the client goroutine may write to the client.
func (c *txClient) replyBatch() error {
	out := c.prefix[:0]
	for range c.batch {
		out, _ = (&pgproto3.ParseComplete{}).Encode(out)
	}
	out, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(out)
	c.prefix = out
	c.batch = c.batch[:0]
	var w io.Writer = c.s.conn
	if c.loop != nil {
		w = c.loop.toClient()
	}
	if _, err := w.Write(out); err != nil {
		return &writeError{err}
	}
	return nil
}

// sendBatch appends to dst the Parses deferred in the current batch, now that
// another message of the batch needs the server: the client gets their
// ParseCompletes from the server, in order. Called with mu held.
func (c *txClient) sendBatch(dst []byte) []byte {
	for _, cs := range c.batch {
		dst = c.appendClientParse(dst, cs)
	}
	c.batch = c.batch[:0]
	return dst
}
