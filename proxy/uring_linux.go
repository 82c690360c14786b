//go:build linux

package proxy

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// sendRing sends many buffers with one system call: an io_uring used for
// nothing but non-blocking sends, each completed before submit returns.
//
// Why: on the VMs pgrotate is measured on a system call costs about a
// microsecond just to enter and leave the kernel (a getppid loop: 1.2 µs
// per call on a 2-CPU PVM guest), and a busy loop makes one sendto per
// forwarded batch — 14 per TPC-B-like transaction. The loop wakes with
// many sockets ready at once, so it queues the sends of one wake-up and
// makes them in one io_uring_enter.
//
// Each send carries MSG_DONTWAIT, which makes io_uring fail it with EAGAIN
// instead of arming a poll and finishing later (REQ_F_NOWAIT): a send is
// exactly a sendto, done or refused before submit returns, so a buffer is
// free again as soon as submit is. Nothing else uses the ring; it is not
// safe for concurrent use (one loop owns it).
type sendRing struct {
	fd     int
	ring   []byte // the SQ and CQ rings (one mapping, IORING_FEAT_SINGLE_MMAP)
	sqeMem []byte

	sqTail, sqMask *uint32
	cqHead, cqTail *uint32
	cqMask         *uint32
	sqes           unsafe.Pointer
	cqes           unsafe.Pointer
	queued         uint32 // SQEs written since the last submit
}

// Linux ABI (include/uapi/linux/io_uring.h).
const (
	sysIOURingSetup = 425 // the same number on every architecture
	sysIOURingEnter = 426

	ioringOffSQRing = 0
	ioringOffSQEs   = 0x10000000

	ioringFeatSingleMmap = 1 << 0
	ioringEnterGetEvents = 1 << 0
	ioringOpSend         = 26

	sqeSize = 64
	cqeSize = 16
)

type ioURingParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

// errNoRing: the kernel has no io_uring, or a seccomp filter (Docker's
// default since 2023) or kernel.io_uring_disabled refuses it; the loop
// then sends one call at a time.
var errNoRing = errors.New("io_uring is not available")

// newSendRing sets up a ring for up to entries sends per submit.
func newSendRing(entries uint32) (*sendRing, error) {
	var p ioURingParams
	fd, _, errno := syscall.RawSyscall(sysIOURingSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("%w: io_uring_setup: %v", errNoRing, errno)
	}
	r := &sendRing{fd: int(fd)}
	if p.features&ioringFeatSingleMmap == 0 {
		r.close()
		return nil, fmt.Errorf("%w: kernel older than 5.4 (no single mmap)", errNoRing)
	}
	if err := r.mapRings(&p); err != nil {
		r.close()
		return nil, err
	}
	if err := r.probe(); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// probe makes sure the kernel sends as sendRing needs: it has
// IORING_OP_SEND (5.6) and fails a MSG_DONTWAIT send to a full socket with
// EAGAIN before submit returns, rather than keeping it to finish later.
// The socket is a Unix pair with a small buffer, filled first.
func (r *sendRing) probe() error {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("probing io_uring: %w", err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	_ = syscall.SetsockoptInt(fds[0], syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
	if err := fillSocket(fds[0]); err != nil {
		return fmt.Errorf("probing io_uring: %w", err)
	}
	r.queueSend(fds[0], []byte{0}, 0)
	if _, err := r.enter(r.publish(), 0); err != nil {
		return fmt.Errorf("%w: %v", errNoRing, err)
	}
	var res int32
	got := r.reap(func(_ uint64, v int32) { res = v })
	switch {
	case got == 0:
		return fmt.Errorf("%w: this kernel keeps a non-blocking send for later", errNoRing)
	case res != -int32(syscall.EAGAIN):
		return fmt.Errorf("%w: a send to a full socket gave %v, not EAGAIN", errNoRing, syscall.Errno(-res))
	}
	return nil
}

func (r *sendRing) mapRings(p *ioURingParams) error {
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*cqeSize)
	ring, err := syscall.Mmap(r.fd, ioringOffSQRing, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mapping the io_uring rings: %w", err)
	}
	r.ring = ring
	sqes, err := syscall.Mmap(r.fd, ioringOffSQEs, int(p.sqEntries*sqeSize), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mapping the io_uring submission entries: %w", err)
	}
	r.sqeMem = sqes
	at := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&ring[off])) }
	r.sqTail, r.sqMask = at(p.sqOff.tail), at(p.sqOff.ringMask)
	r.cqHead, r.cqTail, r.cqMask = at(p.cqOff.head), at(p.cqOff.tail), at(p.cqOff.ringMask)
	r.sqes = unsafe.Pointer(&sqes[0])
	r.cqes = unsafe.Pointer(&ring[p.cqOff.cqes])
	// The SQ array maps ring slots to SQEs; slot i always uses SQE i.
	for i := uint32(0); i < p.sqEntries; i++ {
		*at(p.sqOff.array + 4*i) = i
	}
	return nil
}

// queueSend adds a send of b to fd; tag comes back with its result. b must
// stay untouched until submit returns.
func (r *sendRing) queueSend(fd int, b []byte, tag uint64) {
	tail := *r.sqTail + r.queued
	sqe := (*[sqeSize]byte)(unsafe.Add(r.sqes, uintptr(tail&*r.sqMask)*sqeSize))
	*sqe = [sqeSize]byte{}
	sqe[0] = ioringOpSend
	*(*int32)(unsafe.Pointer(&sqe[4])) = int32(fd)
	*(*uint64)(unsafe.Pointer(&sqe[16])) = uint64(uintptr(unsafe.Pointer(&b[0])))
	*(*uint32)(unsafe.Pointer(&sqe[24])) = uint32(len(b))
	*(*uint32)(unsafe.Pointer(&sqe[28])) = syscall.MSG_DONTWAIT | syscall.MSG_NOSIGNAL
	*(*uint64)(unsafe.Pointer(&sqe[32])) = tag
	r.queued++
}

// submit makes the queued sends and calls done with each one's tag and
// result: bytes sent, or a negative errno. All have completed when it
// returns (see sendRing).
func (r *sendRing) submit(done func(tag uint64, res int32)) error {
	unsubmitted, inFlight := r.publish(), uint32(0)
	for unsubmitted > 0 || inFlight > 0 {
		// The kernel stops submitting at an entry it cannot take and then
		// does not wait; the rest go in on the next turn.
		n, err := r.enter(unsubmitted, unsubmitted+inFlight)
		if err != nil {
			return err
		}
		if n == 0 && inFlight == 0 {
			return fmt.Errorf("io_uring_enter took none of %d sends", unsubmitted)
		}
		unsubmitted -= uint32(n)
		inFlight += uint32(n)
		inFlight -= r.reap(done)
	}
	return nil
}

// publish hands the queued entries to the kernel (the SQ tail) and
// returns how many they are.
func (r *sendRing) publish() uint32 {
	n := r.queued
	atomic.StoreUint32(r.sqTail, *r.sqTail+n)
	r.queued = 0
	return n
}

// fillSocket writes to a non-blocking socket until it takes no more.
func fillSocket(fd int) error {
	chunk := make([]byte, 4096)
	for {
		_, err := rawWrite(fd, chunk)
		switch err {
		case nil:
		case syscall.EAGAIN:
			return nil
		default:
			return err
		}
	}
}

func (r *sendRing) enter(toSubmit, minComplete uint32) (int, error) {
	for {
		n, _, errno := syscall.RawSyscall6(sysIOURingEnter, uintptr(r.fd), uintptr(toSubmit), uintptr(minComplete), ioringEnterGetEvents, 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		default:
			return 0, fmt.Errorf("io_uring_enter: %w", errno)
		}
	}
}

func (r *sendRing) reap(done func(tag uint64, res int32)) uint32 {
	head, tail := *r.cqHead, atomic.LoadUint32(r.cqTail)
	for i := head; i != tail; i++ {
		cqe := unsafe.Add(r.cqes, uintptr(i&*r.cqMask)*cqeSize)
		done(*(*uint64)(cqe), *(*int32)(unsafe.Add(cqe, 8)))
	}
	atomic.StoreUint32(r.cqHead, tail)
	return tail - head
}

func (r *sendRing) close() {
	if r.sqeMem != nil {
		syscall.Munmap(r.sqeMem)
	}
	if r.ring != nil {
		syscall.Munmap(r.ring)
	}
	closeRaw(r.fd)
}
