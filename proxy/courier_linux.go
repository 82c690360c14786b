//go:build linux

package proxy

import (
	"os"
	"sync"
	"syscall"
)

// courier runs, on a goroutine of its own, what the event loop hands back to
// goroutines: the end of a relay round to the session waiting for it, a
// round trip the loop must not wait for.
//
// Why not wake them from the loop: a goroutine the loop goroutine wakes goes
// into the runnext slot of the loop's P, which never schedules while the
// loop runs. Only another thread's steal reaches it, and the runtime steals
// from runnext only after usleep(3): a nanosleep, a context switch and tens
// of µs per hand-back (0.92 context switches of 11.3 per session-mode login,
// perf record on sched_switch). The courier is woken through Go's netpoller
// instead (an eventfd), so it runs on another P, and what it wakes runs next
// there, on the same thread.
type courier struct {
	efd  int      // eventfd, non-blocking; the loop writes it
	file *os.File // the same descriptor in Go's netpoller; the courier reads it
	done chan struct{}

	mu   sync.Mutex
	jobs []func() // nil: stop once the jobs before it have run
}

func newCourier() (*courier, error) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		return nil, os.NewSyscallError("eventfd2", errno)
	}
	c := &courier{efd: int(r), file: os.NewFile(r, "courier eventfd"), done: make(chan struct{})}
	go c.run()
	return c, nil
}

// handBack has job run on the courier goroutine, after the jobs handed back
// before it; nil stops the courier once those have run. Any goroutine may
// call it; the loop does.
func (c *courier) handBack(job func()) {
	c.mu.Lock()
	c.jobs = append(c.jobs, job)
	wake := len(c.jobs) == 1
	c.mu.Unlock()
	if wake {
		var one = [8]byte{1}
		_, _ = eventfdWrite(c.efd, one[:])
	}
}

// stop runs what is still handed back, then ends the courier.
func (c *courier) stop() {
	c.handBack(nil)
	<-c.done
	_ = c.file.Close()
}

func (c *courier) run() {
	defer close(c.done)
	var buf [8]byte
	for {
		// Only an eventfd that is already closed fails; stop closes it
		// after this goroutine is done.
		if _, err := c.file.Read(buf[:]); err != nil {
			return
		}
		c.mu.Lock()
		jobs := c.jobs
		c.jobs = nil
		c.mu.Unlock()
		for _, job := range jobs {
			if job == nil {
				return
			}
			job()
		}
	}
}
