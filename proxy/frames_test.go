package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// recorder is an inspector that remembers what it was shown.
type recorder struct {
	seen   []string
	verdic map[byte]verdict
}

func (r *recorder) inspect(typ byte, body []byte) (verdict, error) {
	r.seen = append(r.seen, string(typ)+":"+string(body))
	return r.verdic[typ], nil
}

func encode(t testing.TB, msgs ...pgproto3.Message) []byte {
	t.Helper()
	var out []byte
	for _, m := range msgs {
		var err error
		if out, err = m.Encode(out); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// splitReaders deliver a stream whole, a byte at a time, or in halves: the
// relay must not care where reads split messages.
var splitReaders = map[string]func(io.Reader) io.Reader{
	"whole":    func(r io.Reader) io.Reader { return r },
	"one byte": iotest.OneByteReader,
	"half":     iotest.HalfReader,
}

// A server reply: the relay forwards it byte for byte and decodes only the
// interesting messages, however the bytes are split across reads.
func TestPumpForwardsEverythingAndInspectsOnlyInterest(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 100_000) // a DataRow larger than the buffer
	stream := encode(t,
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a")}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("1")}},
		&pgproto3.DataRow{Values: [][]byte{big}},
		&pgproto3.ParameterStatus{Name: "TimeZone", Value: "UTC"},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 2")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	)
	for name, wrap := range splitReaders {
		t.Run(name, func(t *testing.T) {
			rd := newFrameReader(wrap(bytes.NewReader(stream)), 64)
			rec := &recorder{verdic: map[byte]verdict{'Z': forwardStop}}
			var out bytes.Buffer
			if err := rd.pump(&out, newTypeSet('Z', 'S'), rec); err != nil {
				t.Fatalf("pump: %v", err)
			}
			if !bytes.Equal(out.Bytes(), stream) {
				t.Fatalf("forwarded %d bytes, want the %d bytes of the stream unchanged", out.Len(), len(stream))
			}
			want := []string{"S:TimeZone\x00UTC\x00", "Z:I"}
			if len(rec.seen) != len(want) || rec.seen[0] != want[0] || rec.seen[1] != want[1] {
				t.Fatalf("inspected %q, want %q", rec.seen, want)
			}
			if !rd.atBoundary() {
				t.Fatal("reader should stand at a message boundary after ReadyForQuery")
			}
		})
	}
}

// Terminate is consumed, not forwarded, and what follows stays in the reader.
func TestPumpDropStopLeavesTheRest(t *testing.T) {
	stream := encode(t, &pgproto3.Query{String: "select 1"}, &pgproto3.Terminate{}, &pgproto3.Sync{})
	rd := newFrameReader(bytes.NewReader(stream), 1024)
	var out bytes.Buffer
	rec := &recorder{verdic: map[byte]verdict{'X': dropStop}}
	if err := rd.pump(&out, newTypeSet('X'), rec); err != nil {
		t.Fatal(err)
	}
	if want := encode(t, &pgproto3.Query{String: "select 1"}); !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("forwarded %q, want only the query %q", out.Bytes(), want)
	}
	typ, _, err := rd.next()
	if err != nil || typ != 'S' {
		t.Fatalf("next after Terminate = %q, %v; want the Sync that followed", typ, err)
	}
}

// A length field below 4 is a protocol violation, reported, never forwarded.
func TestPumpRejectsImpossibleLength(t *testing.T) {
	rd := newFrameReader(bytes.NewReader([]byte{'Q', 0, 0, 0, 2}), 64)
	var out bytes.Buffer
	err := rd.pump(&out, newTypeSet(), &recorder{})
	if err == nil || out.Len() != 0 {
		t.Fatalf("pump = %v with %d bytes forwarded; want errFrameLength and nothing forwarded", err, out.Len())
	}
}

// A reset is how a client killed with replies unread leaves: on a client's
// reader it is a disconnect (logged at debug, like a FIN), on a server
// connection's it stays the failure it is.
func TestClientResetIsADisconnect(t *testing.T) {
	reset := iotest.ErrReader(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)})
	err := newClientReader(reset).fill(1)
	if !isDisconnect(err) {
		t.Errorf("client reader: %v; want a disconnect", err)
	}
	if msg := asDisconnect(err).Error(); strings.Count(msg, "client connection") != 1 {
		t.Errorf("marked as a disconnect again: %q; want it said once", msg)
	}
	if err := newServerReader(reset).fill(1); isDisconnect(err) || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("server reader: %v; want the reset as it is", err)
	}
	timedOut := iotest.ErrReader(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)})
	if err := newClientReader(timedOut).fill(1); !isDisconnect(err) {
		t.Errorf("client reader after keepalive gave up: %v; want a disconnect", err)
	}
	if err := newClientReader(iotest.ErrReader(os.ErrDeadlineExceeded)).fill(1); isDisconnect(err) {
		t.Errorf("client reader past its deadline: %v; want no disconnect (a kick, an interrupt)", err)
	}
}

// FuzzFrameReader feeds arbitrary bytes through the relay: it must forward
// a prefix of the input unchanged and never panic.
func FuzzFrameReader(f *testing.F) {
	f.Add(encode(f, &pgproto3.Query{String: "select 1"}, &pgproto3.Terminate{}), uint8(3))
	f.Add(encode(f, &pgproto3.DataRow{Values: [][]byte{[]byte("abc")}}, &pgproto3.ReadyForQuery{TxStatus: 'T'}), uint8(1))
	f.Add([]byte{'Z', 0, 0, 0, 5, 'I', 'S', 0xff, 0xff, 0xff, 0xff}, uint8(7))
	f.Fuzz(func(t *testing.T, stream []byte, size uint8) {
		rd := newFrameReader(iotest.HalfReader(bytes.NewReader(stream)), int(size)%64+5)
		var out bytes.Buffer
		_ = rd.pump(&out, newTypeSet('Z', 'S', 'X', 'E'), &recorder{verdic: map[byte]verdict{'X': dropStop}})
		if !bytes.HasPrefix(stream, out.Bytes()) {
			t.Fatalf("forwarded bytes are not a prefix of the input")
		}
	})
}

// A client's lazy reader, driven as the event loop drives it (fill, forward,
// release): requests that fit one lazy read are forwarded from the reader's
// small array, larger ones move to a pooled buffer mid-message, and between
// requests the reader holds no buffer at all — however the bytes are split.
func TestLazyReaderForwardsSmallAndLargeRequests(t *testing.T) {
	large := strings.Repeat("y", 20_000) // larger than clientBufSize: the buffer grows
	stream := encode(t,
		&pgproto3.Query{String: "select 1"},
		&pgproto3.Parse{Name: "s1", Query: "select " + strings.Repeat("x", 700)}, // > lazyReadSize
		&pgproto3.Sync{},
		&pgproto3.Query{String: large},
		&pgproto3.Query{String: "select 2"},
	)
	for name, wrap := range splitReaders {
		t.Run(name, func(t *testing.T) {
			rd := newClientReader(wrap(bytes.NewReader(stream)))
			rec := &recorder{}
			var out bytes.Buffer
			need := 1
			for {
				if err := rd.fill(need); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("fill: %v", err)
				}
				var err error
				if need, _, err = rd.forward(&out, newTypeSet('Q', 'P'), rec); err != nil {
					t.Fatalf("forward: %v", err)
				}
				rd.release()
				if rd.atBoundary() && rd.buf != nil {
					t.Fatalf("reader holds a %d-byte buffer between requests", len(rd.buf))
				}
			}
			if !bytes.Equal(out.Bytes(), stream) {
				t.Fatalf("forwarded %d bytes, want the %d bytes of the stream unchanged", out.Len(), len(stream))
			}
			want := []string{"Q:select 1\x00", "P:s1\x00select " + strings.Repeat("x", 700) + "\x00\x00\x00", "Q:" + large + "\x00", "Q:select 2\x00"}
			if len(rec.seen) != len(want) {
				t.Fatalf("inspected %d messages, want %d", len(rec.seen), len(want))
			}
			for i := range want {
				if rec.seen[i] != want[i] {
					t.Fatalf("message %d inspected as %.40q…, want %.40q…", i, rec.seen[i], want[i])
				}
			}
		})
	}
}

// Readers on the event loop read into one scratch buffer they all share
// (fillShared), and whatever a read left unforwarded moves to the reader's
// own buffer (unshare) before the next reader reuses the scratch. Driven as
// the loop drives them, two readers taking turns each forward their stream
// unchanged, however the bytes are split; neither, served only this way,
// holds a buffer between messages; and the scratch, though as large as the
// server reader's buffers, never goes into their pool.
func TestReadersShareTheLoopScratch(t *testing.T) {
	replies := encode(t,
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a")}}},
		&pgproto3.DataRow{Values: [][]byte{bytes.Repeat([]byte("d"), 300)}}, // larger than the scratch
		&pgproto3.ErrorResponse{Severity: "ERROR", Code: "22012", Message: strings.Repeat("e", 100)},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	)
	requests := encode(t,
		&pgproto3.Query{String: "select 1"},
		&pgproto3.Parse{Name: "s1", Query: "select " + strings.Repeat("x", 200)}, // inspected whole, larger than the scratch
		&pgproto3.Sync{},
	)
	for name, wrap := range splitReaders {
		t.Run(name, func(t *testing.T) {
			scratch := make([]byte, 64)
			bufs := newRecordingBufs(len(scratch))
			type side struct {
				rd       *frameReader
				interest *typeSet
				out      bytes.Buffer
				need     int
				done     bool
			}
			sides := []*side{
				{rd: &frameReader{src: wrap(bytes.NewReader(replies)), size: bufs.size, bufs: &bufs.bufPool}, interest: newTypeSet('E', 'Z'), need: 1},
				{rd: newClientReader(wrap(bytes.NewReader(requests))), interest: newTypeSet('Q', 'P'), need: 1},
			}
			for !sides[0].done || !sides[1].done {
				for _, s := range sides {
					if s.done {
						continue
					}
					if err := s.rd.fillShared(scratch, s.need); err == io.EOF {
						s.done = true
						continue
					} else if err != nil {
						t.Fatalf("fill: %v", err)
					}
					var err error
					if s.need, _, err = s.rd.forward(&s.out, s.interest, &recorder{}); err != nil {
						t.Fatalf("forward: %v", err)
					}
					s.rd.unshare()
					s.rd.release()
					for i := range scratch {
						scratch[i] = '!' // the next relay's read
					}
				}
				if c := sides[1].rd; c.atBoundary() && (c.buf != nil || c.small != nil) {
					t.Fatal("a client reader on the loop holds a buffer between requests")
				}
				if s := sides[0].rd; s.atBoundary() && s.buf != nil {
					t.Fatal("a server reader on the loop holds a buffer between replies")
				}
			}
			if bufs.took(scratch) {
				t.Fatal("the loop's scratch went into the readers' buffer pool")
			}
			if got := sides[0].out.Bytes(); !bytes.Equal(got, replies) {
				t.Fatalf("server side forwarded %q, want %q", got, replies)
			}
			if got := sides[1].out.Bytes(); !bytes.Equal(got, requests) {
				t.Fatalf("client side forwarded %q, want %q", got, requests)
			}
		})
	}
}

// recordingBufs is a bufPool that lends new buffers of one size and
// records the ones given back.
type recordingBufs struct {
	bufPool
	given [][]byte
}

func newRecordingBufs(size int) *recordingBufs {
	b := &recordingBufs{}
	b.bufPool = bufPool{
		size: size,
		get:  func() []byte { return make([]byte, size) },
		put:  func(buf []byte) { b.given = append(b.given, buf) },
	}
	return b
}

// took reports whether buf was given back to the pool.
func (b *recordingBufs) took(buf []byte) bool {
	for _, g := range b.given {
		if &g[0] == &buf[0] {
			return true
		}
	}
	return false
}

// A reader whose bytes are in the loop's scratch keeps them there when
// told to release: the scratch is not its to give back, even when it is as
// large as the reader's own buffers.
func TestReleaseKeepsTheLoopScratch(t *testing.T) {
	scratch := make([]byte, 64)
	bufs := newRecordingBufs(len(scratch))
	rd := &frameReader{src: bytes.NewReader(encode(t, &pgproto3.ReadyForQuery{TxStatus: 'I'})), size: bufs.size, bufs: &bufs.bufPool}
	if err := rd.fillShared(scratch, 1); err != nil {
		t.Fatalf("fill: %v", err)
	}
	rd.start = rd.end // everything forwarded
	rd.release()
	if bufs.took(scratch) {
		t.Fatal("release gave the loop's scratch to the pool")
	}
	rd.unshare()
	if rd.buf != nil {
		t.Fatal("a reader that forwarded everything holds a buffer after unshare")
	}
}

// A server connection's reader lets go of its buffer once the replies to a
// control query are read, and as the connection goes idle in its pool: an
// idle connection holds no 32 KiB buffer.
func TestIdleServerConnectionHoldsNoBuffer(t *testing.T) {
	replies := encode(t,
		&pgproto3.CommandComplete{CommandTag: []byte("DISCARD ALL")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	)
	sc := &serverConn{rd: newServerReader(bytes.NewReader(replies)), params: map[string]string{}}
	if err := sc.readReplies(1, nil); err != nil {
		t.Fatalf("readReplies: %v", err)
	}
	if sc.rd.buf != nil {
		t.Fatal("the reader kept its buffer after the replies were read")
	}
	sc.rd.src = bytes.NewReader(encode(t, &pgproto3.ReadyForQuery{TxStatus: 'I'}))
	if _, _, err := sc.rd.next(); err != nil { // a relay on a goroutine forwarded it
		t.Fatalf("next: %v", err)
	}
	sc.goIdle()
	if sc.rd.buf != nil || connState(sc.state.Load()) != connIdle {
		t.Fatal("an idle connection's reader kept its buffer")
	}
}

// A client the event loop takes over after its login sheds its buffers,
// the small array a goroutine's reads used included, unless bytes still
// wait in them (a query sent right behind the login), which stay.
func TestShedKeepsOnlyWaitingBytes(t *testing.T) {
	query := encode(t, &pgproto3.Query{String: "select 1"})
	rd := newClientReader(bytes.NewReader(append(query, query...)))
	if err := rd.fill(1); err != nil {
		t.Fatalf("fill: %v", err)
	}
	rd.start += len(query) // the first message consumed, the second waiting
	rd.shed()
	if rd.small == nil || !bytes.Equal(rd.buf[rd.start:rd.end], query) {
		t.Fatalf("shed dropped the waiting bytes: %q", rd.buf[rd.start:rd.end])
	}
	rd.start = rd.end // the loop forwarded them
	rd.shed()
	if rd.buf != nil || rd.small != nil {
		t.Fatal("a reader with nothing waiting kept a buffer after shed")
	}
}

// A request that arrived whole in one lazy read is forwarded from where it
// was read: no pooled buffer, no copy.
func TestLazyReaderKeepsAWholeSmallRequestInPlace(t *testing.T) {
	rd := newClientReader(bytes.NewReader(encode(t, &pgproto3.Query{String: "select 1"})))
	if err := rd.fill(1); err != nil {
		t.Fatalf("fill: %v", err)
	}
	if !rd.inSmall() {
		t.Fatal("a request that fits one lazy read was copied to a pooled buffer")
	}
}

// The replies to a session reset (DISCARD ALL, then the departing client's
// settings) are all in once the reader holds as many whole ReadyForQuery
// messages as the reset asked for; the event loop only settles a connection
// then, and a prefix cut anywhere is not enough.
func TestHoldsReadies(t *testing.T) {
	replies := encode(t,
		&pgproto3.CommandComplete{CommandTag: []byte("DISCARD ALL")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
		&pgproto3.ParameterStatus{Name: "application_name", Value: "app"},
		&pgproto3.CommandComplete{CommandTag: []byte("SET")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	)
	held := func(b []byte, n int) bool {
		rd := newFrameReader(bytes.NewReader(b), 64)
		if len(b) > 0 {
			if err := rd.fill(len(b)); err != nil {
				t.Fatal(err)
			}
		}
		return rd.holdsReadies(n)
	}
	if !held(replies, 2) {
		t.Error("both replies buffered: not seen as held")
	}
	for cut := 0; cut < len(replies); cut++ {
		if held(replies[:cut], 2) {
			t.Fatalf("the first %d of %d bytes seen as both replies", cut, len(replies))
		}
	}
	if !held(replies[:23], 1) { // CommandComplete "DISCARD ALL" and its ReadyForQuery
		t.Error("the first reply buffered: not seen as held")
	}
	if !held([]byte{'Z', 0, 0, 0, 1}, 1) {
		t.Error("an impossible length must count as held, for the reader to report it")
	}
}

// A FunctionCall is inspected whole when small (the role guard reads its
// set_config calls) and by header when large: lo_write carries a large
// object of any size in one, beyond what the relay holds whole.
func TestSmallWholeReadsLargeMessagesByHeader(t *testing.T) {
	small := &pgproto3.FunctionCall{Function: 2078, Arguments: [][]byte{[]byte("application_name"), []byte("x"), []byte("f")}}
	large := &pgproto3.FunctionCall{Function: 955, Arguments: [][]byte{[]byte("1"), bytes.Repeat([]byte("y"), maxSmallWhole+1)}}
	stream := encode(t, small, large, &pgproto3.Sync{})
	rd := newFrameReader(bytes.NewReader(stream), 64)
	rec := &recorder{verdic: map[byte]verdict{'S': forwardStop}}
	var out bytes.Buffer
	if err := rd.pump(&out, newTypeSet('S').with('F', smallWhole), rec); err != nil {
		t.Fatalf("pump: %v", err)
	}
	if !bytes.Equal(out.Bytes(), stream) {
		t.Fatalf("forwarded %d bytes, want the %d of the stream unchanged", out.Len(), len(stream))
	}
	smallBody := encode(t, small)[5:]
	if len(rec.seen) != 3 || rec.seen[0] != "F:"+string(smallBody) || rec.seen[1] != "F:" || rec.seen[2] != "S:" {
		t.Fatalf("inspected %d messages (%.20q…); want the small call whole, the large one by header, then Sync", len(rec.seen), rec.seen)
	}
}
