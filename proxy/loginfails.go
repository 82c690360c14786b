package proxy

import (
	"sync"
	"time"
)

// loginFailures bounds the log lines of clients that fail before they have
// logged in: garbage where a startup packet belongs (a port scanner, an
// HTTP check aimed at the wrong port), a wrong password, an unknown
// database, max_client_conn reached. Each is worth a line to the operator,
// but a flood of them (thousands a second from one scanner) buried
// everything else in the log and cost more CPU in log writes than in
// refusing the clients.
//
// Each kind of failure (its SQLSTATE) has a budget of its own, so a flood
// of one kind hides none of another: a scanner's garbage does not silence
// wrong passwords. Past loginFailBurst lines of a kind in a
// loginFailWindow, that kind is counted instead; one line says so as it
// begins, and one at the window's end says how many were left out. Every
// client is still told why it was refused.
type loginFailures struct {
	mu     sync.Mutex
	kinds  map[string]*failWindow // by SQLSTATE
	closed bool
	// windowEnd reports a kind's failures not logged in the window that
	// ended; after runs it when a window ends (time.AfterFunc; tests
	// replace both).
	windowEnd func(code string, skipped int)
	after     func(d time.Duration, f func()) *time.Timer
}

// failWindow is one kind's current window.
type failWindow struct {
	since   time.Time
	logged  int
	skipped int         // failures not logged, not reported yet
	timer   *time.Timer // reports skipped at the window's end; nil if none is due
}

const (
	loginFailBurst  = 20
	loginFailWindow = 10 * time.Second
)

// admit reports whether a failure of kind code at now gets its line.
// first: this failure is the first left out in its window, which is worth
// a line of its own; the timer it starts reports, at the window's end, how
// many were left out (also those of a window that began before it fired).
func (f *loginFailures) admit(code string, now time.Time) (ok, first bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.kinds == nil {
		f.kinds = make(map[string]*failWindow)
	}
	w := f.kinds[code]
	if w == nil {
		w = &failWindow{}
		f.kinds[code] = w
	}
	if now.Sub(w.since) >= loginFailWindow {
		w.since, w.logged = now, 0
	}
	if w.logged < loginFailBurst {
		w.logged++
		return true, false
	}
	w.skipped++
	if w.timer != nil || f.closed {
		return false, false
	}
	w.timer = f.after(w.since.Add(loginFailWindow).Sub(now), func() { f.report(code) })
	return false, true
}

// report says, at the end of code's window, how many failures of it were
// not logged.
func (f *loginFailures) report(code string) {
	f.mu.Lock()
	w := f.kinds[code]
	w.timer = nil
	skipped := w.skipped
	w.skipped = 0
	closed := f.closed
	f.mu.Unlock()
	if skipped > 0 && !closed {
		f.windowEnd(code, skipped)
	}
}

// close stops the reports still due: the server is closing.
func (f *loginFailures) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, w := range f.kinds {
		if w.timer != nil {
			w.timer.Stop()
			w.timer = nil
		}
	}
}
