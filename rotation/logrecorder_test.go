package rotation

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logRecorder is a slog.Handler that keeps every line, so tests can wait for
// an event the code logs and check that no line carries a password.
type logRecorder struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
	attrs   []slog.Attr
	parent  *logRecorder
}

func newLogRecorder(t *testing.T) (*logRecorder, *slog.Logger) {
	r := &logRecorder{changed: make(chan struct{}, 1)}
	t.Cleanup(func() {
		for _, l := range r.snapshot() {
			if strings.Contains(l, secret) {
				t.Errorf("log line leaks the password: %s", l)
			}
		}
	})
	return r, slog.New(r)
}

func (r *logRecorder) root() *logRecorder {
	if r.parent != nil {
		return r.parent
	}
	return r
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	for _, a := range r.attrs {
		b.WriteString(" " + a.String())
	}
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	root := r.root()
	root.mu.Lock()
	root.lines = append(root.lines, b.String())
	root.mu.Unlock()
	select {
	case root.changed <- struct{}{}:
	default:
	}
	return nil
}

func (r *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logRecorder{attrs: append(append([]slog.Attr{}, r.attrs...), attrs...), parent: r.root()}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

func (r *logRecorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// waitFor blocks until a line containing every one of parts has been logged
// since line number from, and returns the index after it. The timeout only
// guards against a hang.
func (r *logRecorder) waitFor(t *testing.T, from int, parts ...string) int {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		lines := r.snapshot()
		for i := from; i < len(lines); i++ {
			if containsAll(lines[i], parts) {
				return i + 1
			}
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("no log line with %q; got:\n%s", parts, strings.Join(lines, "\n"))
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
