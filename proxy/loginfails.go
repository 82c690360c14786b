package proxy

import (
	"sync"
	"time"
)

// loginFailures bounds the log lines of clients that fail before they have
// logged in: garbage where a startup packet belongs (a port scanner, an
// HTTP check aimed at the wrong port), a wrong password, an unknown
// database. Each is worth a line to the operator, but a flood of them
// (thousands a second from one scanner) buried everything else in the log
// and cost more CPU in log writes than in refusing the clients. Past
// loginFailBurst lines in a loginFailWindow, failures are counted instead,
// and the next line logged says how many were left out. Every client is
// still told why it was refused.
type loginFailures struct {
	mu      sync.Mutex
	since   time.Time // start of the current window
	logged  int       // lines logged in the current window
	skipped int       // failures not logged since the last line
}

const (
	loginFailBurst  = 20
	loginFailWindow = 10 * time.Second
)

// admit reports whether a failure at now gets its line; if so, skipped is
// how many were left out before it. first: this failure is the first left
// out in its window, which is worth a line of its own.
func (f *loginFailures) admit(now time.Time) (ok bool, skipped int, first bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(f.since) >= loginFailWindow {
		f.since, f.logged = now, 0
	}
	if f.logged >= loginFailBurst {
		f.skipped++
		return false, 0, f.skipped == 1
	}
	f.logged++
	skipped, f.skipped = f.skipped, 0
	return true, skipped, false
}
