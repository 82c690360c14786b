package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pgrotate/pgrotate/internal/daemon"
)

// Limits that keep the live view within 20 lines.
const (
	viewGenerations = 4
	viewRotations   = 5
	// plainGenerations keeps the appended line short: current and previous.
	plainGenerations = 2
	// maxLineWidth keeps live lines from wrapping on an 80-column
	// terminal, which would break redrawing in place.
	maxLineWidth = 79
)

// sample is everything one frame of the view shows.
type sample struct {
	at                            time.Time
	committed, failed, migrations uint64
	db                            daemon.DatabaseStatus
	sessions                      [][]string // usename, count
	sessionsErr                   error      // why sessions could not be read this time
	rotations                     []Rotation
	problems                      []string
}

// view draws the live view: a frame redrawn in place on a terminal, or an
// appended line per second (plus one per rotation event) otherwise.
type view struct {
	out    io.Writer
	live   bool
	header string
	start  time.Time
	total  time.Duration

	lines   int            // height of the last live frame
	base    sample         // where the current transactions-per-second window began
	printed map[int]string // plain mode: last state printed per rotation
	tps     float64
}

// newView returns a view of a run of length total.
func newView(out io.Writer, live bool, header string, total time.Duration) *view {
	return &view{out: out, live: live, header: header, start: time.Now(), total: total, printed: map[int]string{}}
}

// interval is how often the view is refreshed.
func (v *view) interval() time.Duration {
	if v.live {
		return 250 * time.Millisecond
	}
	return time.Second
}

// draw shows s.
func (v *view) draw(s sample) {
	// Transactions per second over at least a second: steadier than per
	// frame, and a last frame right after the previous one keeps the rate.
	switch dt := s.at.Sub(v.base.at); {
	case v.base.at.IsZero():
		v.base = s
	case dt >= 900*time.Millisecond: // a ticker of 1s may fire a hair early
		v.tps = float64(s.committed-v.base.committed) / dt.Seconds()
		v.base = s
	}
	if v.live {
		v.drawFrame(s)
		return
	}
	v.drawLine(s)
}

// drawFrame redraws the whole frame: cursor up over the last one, then each
// line cleared and rewritten, then everything below cleared.
func (v *view) drawFrame(s sample) {
	lines := v.frame(s)
	var b bytes.Buffer
	if v.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.lines)
	}
	for _, l := range lines {
		b.WriteString("\x1b[2K" + truncate(l, maxLineWidth) + "\n")
	}
	b.WriteString("\x1b[J")
	v.lines = len(lines)
	_, _ = v.out.Write(b.Bytes())
}

func (v *view) frame(s sample) []string {
	elapsed := s.at.Sub(v.start)
	lines := []string{
		v.header,
		fmt.Sprintf("elapsed      %4.1fs of %s", elapsed.Seconds(), v.total),
		fmt.Sprintf("workload     %6.0f tps   committed %d   failed %d   migrations %d", v.tps, s.committed, s.failed, s.migrations),
		fmt.Sprintf("pgrotate     role %s, generation %d, %d clients", s.db.CurrentRole, s.db.Generation, s.db.Clients),
	}
	for i, g := range s.db.Generations {
		if i == viewGenerations {
			break
		}
		lines = append(lines, fmt.Sprintf("  gen %-3d %s  idle %3d  busy %3d  %s", g.Generation, g.Role, g.Idle, g.Busy, genState(g.Current, g.Drained)))
	}
	lines = append(lines, "postgres     sessions "+sessionsText(s, false))
	lines = append(lines, fmt.Sprintf("rotations    %d", len(s.rotations)))
	for _, r := range s.rotations[max(0, len(s.rotations)-viewRotations):] {
		lines = append(lines, "  "+rotationLine(r))
	}
	if len(s.problems) > 0 {
		lines = append(lines, fmt.Sprintf("PROBLEMS     %d, last: %s", len(s.problems), s.problems[len(s.problems)-1]))
	}
	return lines
}

// drawLine appends the once-per-second line, preceded by a line for each
// rotation whose state changed.
func (v *view) drawLine(s sample) {
	var b strings.Builder
	for _, r := range s.rotations {
		if st := r.state(); v.printed[r.N] != st {
			v.printed[r.N] = st
			fmt.Fprintf(&b, "rotation #%d %s -> %s: %s\n", r.N, r.From, r.To, st)
		}
	}
	var gens []string
	for i, g := range s.db.Generations {
		if i == plainGenerations {
			break
		}
		gens = append(gens, fmt.Sprintf("g%d %d/%d %s", g.Generation, g.Idle, g.Busy, genState(g.Current, g.Drained)))
	}
	fmt.Fprintf(&b, "%5.1fs %6.0f tps committed %d failed %d | %s gen %d | idle/busy %s | sessions %s\n",
		s.at.Sub(v.start).Seconds(), v.tps, s.committed, s.failed, s.db.CurrentRole, s.db.Generation,
		strings.Join(gens, ", "), sessionsText(s, true))
	_, _ = io.WriteString(v.out, b.String())
}

func genState(current, drained bool) string {
	switch {
	case current:
		return "current"
	case drained:
		return "drained"
	}
	return "draining"
}

// rotationLine is one rotation in the live view, with short role names.
func rotationLine(r Rotation) string {
	return fmt.Sprintf("#%-3d %s -> %s  %s", r.N, shortRole(r.From), shortRole(r.To), r.state())
}

func shortRole(role string) string { return strings.TrimPrefix(role, "bookstore_user_") }

// sessionsText lists the sessions per executing role of s.
func sessionsText(s sample, short bool) string {
	switch {
	case s.sessionsErr != nil:
		return "unavailable (" + s.sessionsErr.Error() + ")"
	case len(s.sessions) == 0:
		return "none"
	}
	var parts []string
	for _, r := range s.sessions {
		name := r[0]
		if short {
			name = shortRole(name)
		}
		parts = append(parts, name+": "+r[1])
	}
	return strings.Join(parts, ", ")
}

// watch refreshes the view until ctx is done, then draws a last frame.
func (v *view) watch(ctx context.Context, take func() sample) {
	t := time.NewTicker(v.interval())
	defer t.Stop()
	for {
		v.draw(take())
		select {
		case <-ctx.Done():
			v.draw(take())
			return
		case <-t.C:
		}
	}
}

// truncate cuts s to at most n runes.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
