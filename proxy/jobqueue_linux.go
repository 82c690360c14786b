//go:build linux

package proxy

import (
	"os"
	"sync"
	"syscall"
)

// jobQueue is a list of functions for one goroutine to run, with an eventfd
// that becomes readable when the list stops being empty: the loop's
// commands (eventLoop.post) and the courier's jobs.
type jobQueue struct {
	efd    int // non-blocking
	mu     sync.Mutex
	jobs   []func()
	closed bool // a nil job was pushed: the reader stops there
}

// push appends job, unless a nil job came before; it reports whether it did.
func (q *jobQueue) push(job func()) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.closed = job == nil
	q.jobs = append(q.jobs, job)
	wake := len(q.jobs) == 1
	q.mu.Unlock()
	if wake {
		var one = [8]byte{1}
		_, _ = eventfdWrite(q.efd, one[:])
	}
	return true
}

// take removes and returns the jobs pushed so far, in order.
func (q *jobQueue) take() []func() {
	q.mu.Lock()
	defer q.mu.Unlock()
	jobs := q.jobs
	q.jobs = nil
	return jobs
}

// newEventFD makes a non-blocking eventfd.
func newEventFD() (int, error) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		return -1, os.NewSyscallError("eventfd2", errno)
	}
	return int(r), nil
}
