//go:build linux

package proxy

import (
	"os"
	"runtime"
	"sync"
)

// loopProcs makes sure goroutines have a P besides the one a loop holds
// while it waits (see epollWait): while a loop runs, GOMAXPROCS is at
// least 2, and if a loop raised it, the last loop to stop gives it back
// (restoreGOMAXPROCS).
// Above 2, the loop counts among the machine's CPUs, which it is, since a
// busy loop keeps one to itself. It used to get a P on top of them:
// goroutines (logins, TLS relays, a session's control queries) then had
// more Ps than CPUs left, and the scheduler kept waking idle threads to
// look for work for them. Counted among the CPUs (2 Ps instead of 3 on 2
// CPUs), a session-mode login (pgbench -C) makes 12.8 context switches and
// 2.1 futex calls instead of 16.3 and 5.4, and costs ~7 % less CPU;
// relaying is unchanged (perf stat).
var loopProcs procReserve

type procReserve struct {
	mu    sync.Mutex
	loops int
	saved int // GOMAXPROCS before a loop raised it to 2; 0: not raised
}

func (r *procReserve) reserve() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loops++
	r.ensureLocked()
}

// ensure raises GOMAXPROCS to 2 again if it went below while loops run.
// Go lowers it by itself when the machine or the container loses CPUs
// (automatic GOMAXPROCS, on Linux since Go 1.25: CPU affinity and hotplug;
// a cgroup limit never takes it below 2). Left at 1, the loop would hold
// the only P and every login would wait for the runtime to preempt it.
// Each loop calls this from time to time.
func (r *procReserve) ensure() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loops > 0 {
		r.ensureLocked()
	}
}

func (r *procReserve) ensureLocked() {
	n := runtime.GOMAXPROCS(0)
	if n >= 2 {
		return
	}
	if r.saved == 0 {
		r.saved = n
	}
	runtime.GOMAXPROCS(2)
}

func (r *procReserve) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loops--
	if r.loops == 0 && r.saved != 0 {
		restoreGOMAXPROCS(r.saved)
		r.saved = 0
	}
}

// restoreGOMAXPROCS puts back the value saved before a loop raised it.
// Unless the operator set it (the GOMAXPROCS environment variable), that
// was Go's default, which follows the machine's CPUs by itself; setting a
// value, as raising it did, turns that off, and SetDefaultGOMAXPROCS turns
// it back on.
func restoreGOMAXPROCS(saved int) {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.SetDefaultGOMAXPROCS()
		return
	}
	runtime.GOMAXPROCS(saved)
}
