package demo

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Rotation is what happened to one rotation of the executing role.
type Rotation struct {
	N          int    // 1 for the first rotation
	From, To   string // executing roles
	FromGen    uint64 // pgrotate's generation of From
	ToGen      uint64 // pgrotate's generation of To, 0 until promoted
	SwappedAt  time.Time
	PromotedAt time.Time // zero until pgrotate made To current
	DrainedAt  time.Time // zero until From's generation had no server connection
	DroppedAt  time.Time // zero until From was dropped
	// OwnedByOld is how many objects From owned when it was dropped: what
	// REASSIGN OWNED had to move to the owner. pgrotate makes it 0.
	OwnedByOld int
	Problem    string // why the rotation did not complete, "" when it did
}

// ToPromotion is the time from the credential swap to pgrotate using To.
func (r Rotation) ToPromotion() time.Duration { return since(r.SwappedAt, r.PromotedAt) }

// ToDrain is the time from promotion until From's generation had drained.
func (r Rotation) ToDrain() time.Duration { return since(r.PromotedAt, r.DrainedAt) }

func since(from, to time.Time) time.Duration {
	if from.IsZero() || to.IsZero() {
		return 0
	}
	return to.Sub(from)
}

// state says in words where the rotation is, for the live view.
func (r Rotation) state() string {
	switch {
	case r.Problem != "":
		return "PROBLEM: " + r.Problem
	case r.PromotedAt.IsZero():
		return "waiting for promotion"
	case r.DrainedAt.IsZero():
		return fmt.Sprintf("promoted %s, draining", seconds(r.ToPromotion()))
	case r.DroppedAt.IsZero():
		return fmt.Sprintf("promoted %s, drained %s, dropping", seconds(r.ToPromotion()), seconds(r.ToDrain()))
	}
	return fmt.Sprintf("promoted %s, drained %s, old role dropped, it owned %d",
		seconds(r.ToPromotion()), seconds(r.ToDrain()), r.OwnedByOld)
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// journal holds the rotations and problems, shared by the rotator, its
// retirers and the view.
type journal struct {
	mu        sync.Mutex
	rotations []*Rotation
	problems  []string
}

// begin records a new rotation and returns its number.
func (j *journal) begin(from, to string, fromGen uint64) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := len(j.rotations) + 1
	j.rotations = append(j.rotations, &Rotation{N: n, From: from, To: to, FromGen: fromGen})
	return n
}

// update changes rotation n under the lock.
func (j *journal) update(n int, fn func(*Rotation)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	fn(j.rotations[n-1])
}

// fail marks rotation n (0: none in particular) as having a problem.
func (j *journal) fail(n int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	j.mu.Lock()
	defer j.mu.Unlock()
	if n > 0 {
		if r := j.rotations[n-1]; r.Problem == "" {
			r.Problem = msg
		}
		msg = fmt.Sprintf("rotation %d: %s", n, msg)
	}
	j.problems = append(j.problems, msg)
}

// snapshot copies the rotations and problems.
func (j *journal) snapshot() ([]Rotation, []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]Rotation, len(j.rotations))
	for i, r := range j.rotations {
		out[i] = *r
	}
	return out, slices.Clone(j.problems)
}
