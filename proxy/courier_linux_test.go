//go:build linux

package proxy

import (
	"slices"
	"testing"

	"go.uber.org/goleak"
)

// What the loop hands back runs on the courier, in the order it was handed
// back, and none of it is lost when the courier stops: a session waiting
// for its round's end always gets it, even from a loop that is closing.
func TestCourierRunsEveryJobInOrder(t *testing.T) {
	defer goleak.VerifyNone(t)
	c, err := newCourier()
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	var got []int // written by the courier goroutine only; stop waits for it
	for i := range n {
		c.handBack(func() { got = append(got, i) })
	}
	c.stop()
	if len(got) != n || !slices.IsSorted(got) {
		t.Fatalf("the courier ran %d of %d jobs, in order: %v", len(got), n, slices.IsSorted(got))
	}
}
