//go:build linux

package proxy

import "os"

// courier runs, on a goroutine of its own, what the event loop hands back to
// goroutines: the end of a relay round to the session waiting for it, a
// round trip the loop must not wait for.
//
// Why not wake them from the loop: a goroutine the loop goroutine wakes goes
// into the runnext slot of the loop's P, which never schedules while the
// loop runs. Only another thread's steal reaches it, and the runtime steals
// from runnext only after usleep(3): a nanosleep and a context switch per
// hand-back (0.92 context switches of 11.3 per session-mode login, perf
// record on sched_switch). The courier is woken through Go's netpoller
// instead (an eventfd), so it runs on another P, and what it wakes runs next
// there, on the same thread.
type courier struct {
	jobs jobQueue // a nil job: stop once the jobs before it have run
	file *os.File // jobs.efd in Go's netpoller; the courier reads it
	done chan struct{}
}

func newCourier() (*courier, error) {
	efd, err := newEventFD()
	if err != nil {
		return nil, err
	}
	c := &courier{jobs: jobQueue{efd: efd}, file: os.NewFile(uintptr(efd), "courier eventfd"), done: make(chan struct{})}
	go c.run()
	return c, nil
}

// handBack has job run on the courier goroutine, after the jobs handed back
// before it; nil stops the courier once those have run. Any goroutine may
// call it; the loop does.
func (c *courier) handBack(job func()) {
	c.jobs.push(job)
}

// spawn has f run on a new goroutine that the courier starts: the loop
// hands work to goroutines this way, since one it started itself would
// wait for another thread to steal it (see courier).
func (c *courier) spawn(f func()) {
	c.handBack(func() { go f() })
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
		// A read fails only on a closed eventfd, and stop closes it
		// after this goroutine is done.
		if _, err := c.file.Read(buf[:]); err != nil {
			return
		}
		for _, job := range c.jobs.take() {
			if job == nil {
				return
			}
			job()
		}
	}
}
