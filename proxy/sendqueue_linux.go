//go:build linux

package proxy

import (
	"os"
	"syscall"
)

// sendQueue holds what the loop's relays wrote during one wake-up, to be
// sent together (one io_uring_enter, see sendRing) before the loop waits
// again. A writer queues only while its socket has taken everything so
// far (no spill) and what it queued is small (queueLimit): a large result
// is written at once, a call per 32 KiB read costing little next to its
// copy. Loop goroutine only.
type sendQueue struct {
	ring    *sendRing // nil: no batching, writers write at once
	writers []*evWriter
	spare   []*evWriter
	free    [][]byte // queue buffers not in use (queueLimit each)
}

// queueLimit bounds what one writer queues; past it, the writer sends
// what it queued and the rest at once. Replies of OLTP statements are far
// smaller: a pgbench transaction's largest is under 200 bytes.
const queueLimit = 8 << 10

// sendBatchSize is the ring's size: the sends of one submit. A wake-up
// handles up to 128 epoll events, each of which may write once or twice.
const sendBatchSize = 256

// queue takes b for w, which has nothing spilled, to send at the next
// flush; false: w must write it at once (no batching, or the queue is
// full for w).
func (q *sendQueue) queue(w *evWriter, b []byte) bool {
	if q == nil || q.ring == nil || len(w.queued)+len(b) > queueLimit {
		return false
	}
	if w.queued == nil {
		w.queued = q.buffer()
		q.writers = append(q.writers, w)
	}
	w.queued = append(w.queued, b...)
	return true
}

func (q *sendQueue) buffer() []byte {
	if n := len(q.free); n > 0 {
		b := q.free[n-1]
		q.free = q.free[:n-1]
		return b
	}
	return make([]byte, 0, queueLimit)
}

// done gives a writer's queue buffer back. Buffers of a busy wake-up are
// kept for the next one, up to a batch's worth; idle relays hold none.
func (q *sendQueue) done(w *evWriter) {
	if len(q.free) < sendBatchSize {
		q.free = append(q.free, w.queued[:0])
	}
	w.queued = nil
}

// flush sends what every writer queued, a batch at a time; a writer whose
// socket took only part keeps the rest as spill, as a direct write would,
// and its relay watches the socket (or ends, if the send failed). Ends and
// mask changes may queue more; flush goes on until nothing is queued.
func (q *sendQueue) flush() {
	for len(q.writers) > 0 {
		ws := q.writers
		q.writers, q.spare = q.spare[:0], nil
		for i := 0; i < len(ws); i += sendBatchSize {
			q.sendBatch(ws[i:min(len(ws), i+sendBatchSize)])
		}
		clear(ws) // ended relays are not kept alive by the queue
		q.spare = ws[:0]
	}
}

func (q *sendQueue) sendBatch(batch []*evWriter) {
	var err error
	done := func(tag uint64, res int32) { batch[tag].sent(res) }
	if q.ring != nil {
		for i, w := range batch {
			if len(w.queued) > 0 {
				q.ring.queueSend(w.fd, w.queued, uint64(i))
			}
		}
		err = q.ring.submit(done)
	}
	if err != nil {
		// The ring failed, which it cannot short of a bug: what it did
		// send is taken as sent (never twice), what it did not is sent
		// below, and every later write is one call each.
		q.ring.reap(done)
		q.ring.close()
		q.ring = nil
	}
	for _, w := range batch {
		if err := w.settle(); err != nil {
			w.err = err
		}
		if w.queued != nil {
			q.done(w)
		}
	}
	for _, w := range batch {
		w.settled()
	}
}

// sent takes the result of the send of w's queue: bytes sent, or -errno.
func (w *evWriter) sent(res int32) {
	switch {
	case res >= 0:
		if rest := w.queued[res:]; len(rest) > 0 {
			w.spill = append(w.spill[:0], rest...)
		}
	case res == -int32(syscall.EAGAIN) || res == -int32(syscall.EINTR):
		w.spill = append(w.spill[:0], w.queued...)
	default:
		w.err = os.NewSyscallError("write", syscall.Errno(-res))
	}
	w.queued = w.queued[:0]
}

// settled tells w's relay how its queue went: it ends if the send failed,
// and watches the socket if some bytes wait in spill.
func (w *evWriter) settled() {
	r := w.owner
	switch {
	case r == nil || r.ended:
		w.err = nil
	case w.err != nil:
		err := w.err
		w.err = nil
		r.end(w.dir, &writeError{err}, false)
	case len(w.spill) > 0:
		r.updateMasks()
	}
}

// settle sends what w queued now: before its relay ends or its socket
// changes hands, nothing may stay queued.
func (w *evWriter) settle() error {
	if len(w.queued) == 0 {
		return nil
	}
	b := w.queued
	w.queued = w.queued[:0]
	_, err := w.writeNow(b)
	return err
}
