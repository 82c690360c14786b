package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
)

// headerLen is the size of a regular protocol message header: a type byte and a
// 4-byte big-endian length that counts itself but not the type byte.
const headerLen = 5

// maxInspectedBody caps the body of a message the relay must hold whole to
// decode (ErrorResponse, ParameterStatus, and in transaction mode Query, Parse
// and Bind, whose parameters can be large). It bounds a connection's memory;
// PostgreSQL's own limit is 1 GB.
const maxInspectedBody = 64 << 20

// defaultBufSize is the relay buffer of one direction. 32 KiB holds a typical
// result set's worth of DataRows, so one read is usually one write.
const defaultBufSize = 32 << 10

// clientBufSize is the buffer of the client-to-server direction, where
// messages are small (queries, binds). It is only held while bytes are in it
// (see lazyReadSize). A larger message still passes (streamed, or the buffer
// grows for one that is inspected).
const clientBufSize = 8 << 10

// lazyReadSize is the first read a goroutine makes for a client reader that
// holds no buffer: a typical request (a query, or Bind/Execute/Sync) fits and
// is forwarded from there; only a request that needs more takes a
// clientBufSize buffer from clientBufs. On the event loop the first read goes
// into the loop's scratch instead (fillShared). An idle client holds none.
const lazyReadSize = 512

// bufPool lends the buffers of lazy readers, all of one size: a reader
// holds one only while bytes wait in it, and an idle connection none.
type bufPool struct {
	size int
	// small: a goroutine's first read for a reader that holds nothing goes
	// into the reader's small array (see lazyReadSize), not a buffer.
	small bool
	get   func() []byte
	put   func([]byte)
}

var (
	clientArrays = sync.Pool{New: func() any { return new([clientBufSize]byte) }}
	serverArrays = sync.Pool{New: func() any { return new([defaultBufSize]byte) }}
)

// clientBufs lends client readers' buffers, serverBufs server readers'.
// Arrays, not slices, go into the sync.Pools: a pointer fits an interface
// without an allocation.
var (
	clientBufs = &bufPool{
		size:  clientBufSize,
		small: true,
		get:   func() []byte { return clientArrays.Get().(*[clientBufSize]byte)[:] },
		put:   func(b []byte) { clientArrays.Put((*[clientBufSize]byte)(b)) },
	}
	serverBufs = &bufPool{
		size: defaultBufSize,
		get:  func() []byte { return serverArrays.Get().(*[defaultBufSize]byte)[:] },
		put:  func(b []byte) { serverArrays.Put((*[defaultBufSize]byte)(b)) },
	}
)

// errFrameLength reports a message whose length field is impossible.
var errFrameLength = errors.New("invalid message length")

// frameReader is a buffered reader over one side of a connection that knows
// where protocol messages begin and end. The relay forwards whole read chunks
// without copying; control operations (reset, SET) read one message at a time.
//
// Ownership: the bytes returned by next and the chunks passed to pump's writer
// are only valid until the next call on the reader.
type frameReader struct {
	src        io.Reader
	size       int // the buffer's normal size
	buf        []byte
	start, end int // buf[start:end] is read but not yet consumed
	// passthrough counts body bytes of the current message that are being
	// forwarded without inspection and have not arrived yet. Non-zero means the
	// stream is in the middle of a message.
	passthrough int
	// bufs is set in a lazy reader (every client's and server's): whenever
	// it has consumed everything, it can give its buffer back (release). It
	// then waits for the next bytes with the event loop's scratch
	// (fillShared), or on a goroutine with a buffer from bufs again or, for
	// a client, with small (allocated at the first such wait), so an idle
	// connection on the loop or in a pool holds no buffer at all.
	bufs  *bufPool
	small *[lazyReadSize]byte
	// shared is set while buf is the event loop's scratch (fillShared).
	shared bool
	// client: src is a client's socket, whose reset is the client leaving
	// (see readErr).
	client bool
}

func newFrameReader(src io.Reader, size int) *frameReader {
	return &frameReader{src: src, size: size, buf: make([]byte, size)}
}

// newClientReader returns a lazy reader of clientBufSize.
func newClientReader(src io.Reader) *frameReader {
	return &frameReader{src: src, size: clientBufSize, bufs: clientBufs, client: true}
}

// newServerReader returns a lazy reader of defaultBufSize. A connection
// idle in a pool then holds no 32 KiB buffer, where each used to keep the
// pages its control queries' replies (a session reset's) and its relays on
// goroutines (a TLS client's) had touched.
func newServerReader(src io.Reader) *frameReader {
	return &frameReader{src: src, size: defaultBufSize, bufs: serverBufs}
}

// newBuf returns an empty buffer of the reader's normal size.
func (r *frameReader) newBuf() []byte {
	if r.bufs != nil {
		return r.bufs.get()
	}
	return make([]byte, r.size)
}

// release gives a lazy reader's buffer back while it holds no bytes: the
// event loop calls it after each forward and a server connection after its
// control queries and as it goes idle, where a client's goroutine relay
// lets go of it as it starts its next read (fillLazy).
func (r *frameReader) release() {
	if r.bufs == nil || r.shared || r.start != r.end {
		return // the loop's scratch is not the reader's to give
	}
	if len(r.buf) == r.bufs.size {
		r.bufs.put(r.buf)
	}
	r.buf, r.start, r.end = nil, 0, 0
}

// shed is release for a client the event loop reads for from now on (into
// its scratch, see fillShared): the small array, which only a goroutine's
// reads use, goes too, and a goroutine that reads for the client again
// allocates a new one. 10,000 idle clients on the loop then hold no 5 MiB of
// small arrays.
func (r *frameReader) shed() {
	r.release()
	if r.start == r.end {
		r.small = nil
	}
}

// fillLazy is fill for a lazy reader that has consumed everything.
func (r *frameReader) fillLazy() error {
	r.release()
	if r.small == nil {
		r.small = new([lazyReadSize]byte)
	}
	n, err := r.src.Read(r.small[:])
	if n == 0 {
		return r.readErr(err)
	}
	// The bytes stay where they were read: a request that arrived whole is
	// forwarded from small, and only one that needs more room moves to a
	// buffer from clientBufs (fill).
	r.buf, r.start, r.end = r.small[:], 0, n
	return nil
}

// fillShared is fill for the event loop: a lazy reader that holds nothing
// gives its buffer back and reads into the loop's scratch buffer, which
// every relay of the loop shares, so that a busy loop keeps touching the
// same few pages however many connections it serves. unshare must follow
// before the reader's bytes can outlive the loop's turn. Every reader on
// the loop is lazy (newClientReader, newServerReader).
func (r *frameReader) fillShared(scratch []byte, need int) error {
	if r.start != r.end || need > len(scratch) || r.shared {
		return r.fill(need)
	}
	r.release()
	n, err := r.src.Read(scratch)
	if n == 0 {
		return r.readErr(err)
	}
	r.buf, r.start, r.end, r.shared = scratch, 0, n, true
	return nil
}

// unshare moves what is left in the loop's scratch into a buffer of the
// reader's own; a reader that forwarded everything holds none.
func (r *frameReader) unshare() {
	if !r.shared {
		return
	}
	left := r.buf[r.start:r.end]
	r.buf, r.shared, r.start, r.end = nil, false, 0, 0
	if len(left) == 0 {
		return
	}
	if len(left) <= r.size {
		r.buf = r.newBuf()
	} else {
		r.buf = make([]byte, len(left))
	}
	r.end = copy(r.buf, left)
}

// inSmall reports whether a lazy reader's bytes are in its small array.
func (r *frameReader) inSmall() bool {
	return r.small != nil && len(r.buf) == lazyReadSize && &r.buf[0] == &r.small[0]
}

// atBoundary reports whether the reader stands between two messages, so that
// another user of the connection can take over the stream.
func (r *frameReader) atBoundary() bool {
	return r.passthrough == 0 && r.start == r.end
}

// midMessage reports whether the reader has passed on part of a message
// whose rest has not arrived: whoever reads the stream next must not be
// another user of the connection.
func (r *frameReader) midMessage() bool { return r.passthrough != 0 }

// buffered reports whether unconsumed bytes are waiting in the buffer.
func (r *frameReader) buffered() bool { return r.start < r.end }

// saysGoodbye reports whether the reader's unconsumed bytes, and after
// them next (bytes peeked from the socket), hold a whole Terminate after
// whole messages alone.
func (r *frameReader) saysGoodbye(next []byte) bool {
	a := r.buf[r.start:r.end]
	at := func(i int) byte {
		if i < len(a) {
			return a[i]
		}
		return next[i-len(a)]
	}
	total := len(a) + len(next)
	for pos := 0; pos+headerLen <= total; {
		size := int(at(pos+1))<<24 | int(at(pos+2))<<16 | int(at(pos+3))<<8 | int(at(pos+4))
		switch {
		case size < 4:
			return false
		case at(pos) == 'X':
			return true
		}
		pos += 1 + size
	}
	return false
}

// holdsReadies reports whether the buffered bytes hold n whole
// ReadyForQuery messages, and every message before them. A length that
// cannot be counts as held: the reader reports it as it reads.
func (r *frameReader) holdsReadies(n int) bool {
	b := r.buf[r.start:r.end]
	for n > 0 {
		if len(b) < headerLen {
			return false
		}
		size := int(binary.BigEndian.Uint32(b[1:headerLen]))
		if size < 4 || size > maxInspectedBody {
			return true
		}
		if len(b) < 1+size {
			return false
		}
		if b[0] == 'Z' {
			n--
		}
		b = b[1+size:]
	}
	return true
}

// fillMore reads once more, keeping what is buffered.
func (r *frameReader) fillMore() error { return r.fill(r.end - r.start + 1) }

// fill reads at least once more from src, compacting or growing the buffer so
// that at least need bytes (counted from start) fit.
func (r *frameReader) fill(need int) error {
	if r.bufs != nil && r.bufs.small && r.start == r.end && need <= lazyReadSize {
		return r.fillLazy()
	}
	if r.inSmall() {
		// More is needed than one lazy read brought: continue in a full buffer.
		b := r.newBuf()
		r.end = copy(b, r.buf[r.start:r.end])
		r.start, r.buf = 0, b
	}
	if r.buf == nil || r.start == r.end && len(r.buf) > r.size && need <= r.size {
		// A large message grew the buffer; do not keep it for good.
		r.buf, r.start, r.end = r.newBuf(), 0, 0
	}
	if need > len(r.buf) {
		grown := make([]byte, max(need, 2*len(r.buf)))
		r.end = copy(grown, r.buf[r.start:r.end])
		r.start, r.buf = 0, grown
	} else if r.start+need > len(r.buf) || r.start == r.end {
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	n, err := r.src.Read(r.buf[r.end:])
	r.end += n
	if n > 0 {
		return nil
	}
	return r.readErr(err)
}

// readErr is what a read that brought nothing reports. A client's reset
// (a worker killed with replies unread, a driver closing with linger 0),
// or a client whose host vanished (TCP keepalive gave up, or the network
// said it is unreachable), is the client leaving, as its FIN is: a
// disconnect, logged at debug. As a bare error it was a session failure,
// logged at WARN with XX000, for every such client. Only the client's own
// socket says so: a reset of a server connection met while the client
// waits is the server's trouble.
func (r *frameReader) readErr(err error) error {
	switch {
	case err == nil:
		return io.ErrNoProgress
	case r.client && clientGone(err):
		return &disconnect{err}
	}
	return err
}

// clientGone reports whether a read error says the peer is gone.
func clientGone(err error) bool {
	for _, e := range []syscall.Errno{syscall.ECONNRESET, syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// next returns the next whole message. body is only valid until the next call.
func (r *frameReader) next() (typ byte, body []byte, err error) {
	if r.passthrough != 0 {
		return 0, nil, errors.New("reading a message in the middle of another")
	}
	for r.end-r.start < headerLen {
		if err := r.fill(headerLen); err != nil {
			return 0, nil, err
		}
	}
	n, err := frameLen(r.buf[r.start:])
	if err != nil {
		return 0, nil, err
	}
	for r.end-r.start < n {
		if err := r.fill(n); err != nil {
			return 0, nil, err
		}
	}
	typ, body = r.buf[r.start], r.buf[r.start+headerLen:r.start+n]
	r.start += n
	return typ, body, nil
}

// frameLen returns the total length (type byte included) of the message whose
// header starts b.
func frameLen(b []byte) (int, error) {
	l := int(binary.BigEndian.Uint32(b[1:5]))
	if l < 4 || l > 1<<30 {
		return 0, fmt.Errorf("%w: type %q length %d", errFrameLength, b[0], l)
	}
	return l + 1, nil
}

// verdict is what an inspector decides about one message.
type verdict uint8

const (
	// forward passes the message on and keeps pumping.
	forward verdict = iota
	// forwardStop passes the message on and ends the pump right after it,
	// leaving later bytes in the reader for the next user of the stream.
	forwardStop
	// dropStop consumes the message without passing it on and ends the pump.
	dropStop
	// rewrite forwards the inspector's replacement (see rewriter) instead
	// of the message, and keeps pumping.
	rewrite
	// dropContinue consumes the message without passing it on and keeps
	// pumping.
	dropContinue
)

// rewriter is an inspector that can replace a message. replacement is
// called right after inspect returned rewrite; the bytes are a whole message,
// header included, and are only used until the next inspect.
type rewriter interface {
	replacement() []byte
}

// inspector is told about each message whose type is in its interest set, with
// its whole body (valid only during the call).
type inspector interface {
	inspect(typ byte, body []byte) (verdict, error)
}

// interest is how closely the relay looks at one message type.
type interest uint8

const (
	// ignore: forwarded as it arrives, never decoded.
	ignore interest = iota
	// header: the inspector is told of the message (with a nil body) when
	// its header arrives; the body is forwarded as it arrives, so a message
	// of any size passes without being buffered whole. The verdict is
	// ignored: the message is always forwarded.
	header
	// whole: the inspector sees the whole body before anything of the
	// message is forwarded. Bodies are capped at maxInspectedBody.
	whole
	// smallWhole: whole up to maxSmallWhole bytes of body, header beyond:
	// FunctionCall, whose calls of set_config the role guard reads, and
	// whose calls of lo_write carry large objects of any size.
	smallWhole
)

// maxSmallWhole is the largest body a smallWhole message is read whole with.
const maxSmallWhole = 64 << 10

// typeSet says how closely the relay looks at each message type.
type typeSet [256]interest

// newTypeSet returns a set that inspects the given types whole.
func newTypeSet(types ...byte) *typeSet {
	var s typeSet
	for _, t := range types {
		s[t] = whole
	}
	return &s
}

// with returns s with typ inspected as i says.
func (s *typeSet) with(typ byte, i interest) *typeSet {
	c := *s
	c[typ] = i
	return &c
}

// withHeaders returns s with the given types inspected by header only.
func (s *typeSet) withHeaders(types ...byte) *typeSet {
	c := *s
	for _, t := range types {
		c[t] = header
	}
	return &c
}

// pump forwards messages from r to dst until the inspector stops it or an error
// occurs. Messages outside the interest set are never decoded: their bytes are
// forwarded as they arrive. Each read is forwarded with one write, so replies of
// many small messages leave in one packet.
func (r *frameReader) pump(dst io.Writer, interest *typeSet, in inspector) error {
	for {
		need, stop, err := r.forward(dst, interest, in)
		if err != nil || stop {
			return err
		}
		if err := r.fill(need); err != nil {
			return err
		}
	}
}

// forward passes on what the buffer holds: through every complete message, and
// through the arrived part of one passed uninspected. It stops when the
// inspector says so (stop), or when it needs more bytes: need is how many,
// counted from start, must be buffered before it can go on. The blocking pump
// and the event loop both drive the relay through it.
func (r *frameReader) forward(dst io.Writer, interest *typeSet, in inspector) (need int, stop bool, err error) {
	for {
		if r.start == r.end {
			return 1, false, nil
		}
		pos, v, err := r.scan(interest, in)
		if pos > r.start {
			chunk := r.buf[r.start:pos]
			r.start = pos
			if _, werr := dst.Write(chunk); werr != nil {
				return 0, false, &writeError{werr}
			}
		}
		if err != nil {
			return 0, false, err
		}
		switch v {
		case rewrite:
			n, _ := frameLen(r.buf[pos:])
			r.start = pos + n
			if _, werr := dst.Write(in.(rewriter).replacement()); werr != nil {
				return 0, false, &writeError{werr}
			}
			continue
		case dropContinue:
			n, _ := frameLen(r.buf[pos:])
			r.start = pos + n
			continue
		case dropStop:
			n, _ := frameLen(r.buf[pos:])
			r.start = pos + n
			return 0, true, nil
		case forwardStop:
			return 0, true, nil
		}
		if pos == r.end {
			continue
		}
		// A header or an inspected message is incomplete: wait for the rest.
		if r.end-pos < headerLen {
			return headerLen, false, nil
		}
		if need, err = frameLen(r.buf[pos:]); err != nil {
			return 0, false, err
		}
		if need-headerLen > maxInspectedBody {
			return 0, false, fmt.Errorf("%w: %q message of %d bytes", errFrameLength, r.buf[pos], need)
		}
		return need, false, nil
	}
}

// scan walks the buffered bytes from start and returns how far they can be
// forwarded: through every complete message, and through the arrived part of a
// message that is passed through uninspected. A dropStop verdict returns the
// position of the dropped message, which the caller then skips.
func (r *frameReader) scan(interest *typeSet, in inspector) (pos int, v verdict, err error) {
	pos = r.start
	for pos < r.end {
		if r.passthrough > 0 {
			n := min(r.passthrough, r.end-pos)
			pos += n
			r.passthrough -= n
			continue
		}
		if r.end-pos < headerLen {
			return pos, forward, nil
		}
		n, err := frameLen(r.buf[pos:])
		if err != nil {
			return pos, forward, err
		}
		typ := r.buf[pos]
		mode := interest[typ]
		if mode == smallWhole {
			mode = whole
			if n-headerLen > maxSmallWhole {
				mode = header
			}
		}
		switch mode {
		case header:
			if _, err := in.inspect(typ, nil); err != nil {
				return pos, forward, err
			}
			fallthrough
		case ignore:
			pos += headerLen
			r.passthrough = n - headerLen
			continue
		}
		if r.end-pos < n {
			return pos, forward, nil
		}
		v, err := in.inspect(typ, r.buf[pos+headerLen:pos+n])
		switch {
		case err != nil:
			return pos, forward, err
		case v == dropStop || v == rewrite || v == dropContinue:
			return pos, v, nil
		}
		pos += n
		if v == forwardStop {
			return pos, v, nil
		}
	}
	return pos, forward, nil
}

// writeError marks a failure to write to the other side, so the caller can
// tell which peer broke.
type writeError struct{ err error }

func (e *writeError) Error() string { return "writing: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }
