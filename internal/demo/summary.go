package demo

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Summary is the outcome of a demo run.
type Summary struct {
	Elapsed     time.Duration
	Interrupted bool // ended by Ctrl-C or SIGTERM before Duration
	// Rotations are every rotation started, in order.
	Rotations []Rotation
	// Problems are rotations that did not complete (not promoted, not
	// drained in time, role not dropped), in words.
	Problems []string
	// Committed, Failed and Migrations count the workload's transactions.
	Committed, Failed, Migrations uint64
	// FirstErrors are the first failure messages, with their times.
	FirstErrors []string
	// ForeignOwned are the objects in the database owned by another role
	// than the owner role, e.g. "table public.t owned by bookstore_user_0002".
	ForeignOwned []string
	// RolesLeft are the executing roles that exist at the end.
	RolesLeft []string
	// WorkDir and ClusterDir are the temporary directories the run used;
	// both are gone when Run returns.
	WorkDir, ClusterDir string
}

// Completed counts the rotations that went all the way: promoted, drained,
// old role dropped.
func (s Summary) Completed() int {
	n := 0
	for _, r := range s.Rotations {
		if !r.DroppedAt.IsZero() {
			n++
		}
	}
	return n
}

// Reassigned is how many objects REASSIGN OWNED had to move to the owner
// role across all rotations. pgrotate makes it 0.
func (s Summary) Reassigned() int {
	n := 0
	for _, r := range s.Rotations {
		n += r.OwnedByOld
	}
	return n
}

// OK reports whether the demo showed what pgrotate promises: no failed
// transaction, every object owned by the owner role, every rotation
// completed and exactly one executing role left.
func (s Summary) OK() bool {
	return s.Failed == 0 && len(s.ForeignOwned) == 0 && len(s.Problems) == 0 && len(s.RolesLeft) == 1
}

// write prints the summary for a person.
func (s Summary) write(w io.Writer, cfg Config) {
	p := func(label, format string, args ...any) {
		fmt.Fprintf(w, "  %-38s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	ended := ""
	if s.Interrupted {
		ended = ", interrupted"
	}
	fmt.Fprintf(w, "\npgrotate demo summary (%.1fs%s, %d clients, rotation every %s, session pool mode)\n",
		s.Elapsed.Seconds(), ended, cfg.Clients, cfg.Every)
	p("rotations", "%d (%d completed: promoted, drained, old role dropped)", len(s.Rotations), s.Completed())
	p("transactions committed", "%d (%.0f per second), migrations %d", s.Committed, float64(s.Committed)/max(s.Elapsed.Seconds(), 0.001), s.Migrations)
	p("failed transactions", "%d", s.Failed)
	p("time from credential swap to promotion", "%s", spread(s.Rotations, Rotation.ToPromotion))
	p("time from promotion to drained", "%s", spread(s.Rotations, Rotation.ToDrain))
	p("objects REASSIGN OWNED had to move", "%d", s.Reassigned())
	p("objects not owned by "+ownerRole, "%d", len(s.ForeignOwned))
	p("executing roles left", "%d (%s)", len(s.RolesLeft), strings.Join(s.RolesLeft, ", "))
	list(w, "first failures", s.FirstErrors)
	list(w, "objects not owned by "+ownerRole, s.ForeignOwned)
	list(w, "problems", s.Problems)
	if s.OK() {
		fmt.Fprintln(w, "result: OK — zero failed transactions, nothing owned by an executing role, old roles dropped")
	} else {
		fmt.Fprintln(w, "result: FAILED — see above")
	}
}

// list prints items under a heading, if there are any.
func list(w io.Writer, heading string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n", heading)
	for _, it := range items {
		fmt.Fprintf(w, "  - %s\n", it)
	}
}

// spread is "median x, max y" of a duration over the rotations that have it.
func spread(rs []Rotation, of func(Rotation) time.Duration) string {
	var ds []time.Duration
	for _, r := range rs {
		if d := of(r); d > 0 {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return "-"
	}
	slices.Sort(ds)
	return fmt.Sprintf("median %s, max %s", seconds(median(ds)), seconds(ds[len(ds)-1]))
}

// median of sorted durations.
func median(ds []time.Duration) time.Duration {
	m := len(ds) / 2
	if len(ds)%2 == 1 {
		return ds[m]
	}
	return (ds[m-1] + ds[m]) / 2
}
