package proxy

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
)

// lazyAttrs is a slog.Handler that keeps a logger's With attributes aside
// until a record is logged. Every client gets a logger naming its address,
// user and database, and most clients never log a line; slog's own
// handlers format attributes as soon as With is called, which was 1.2 % of
// a session-mode login's CPU (perf, pgbench -C).
type lazyAttrs struct {
	h     slog.Handler
	attrs []slog.Attr
	// withAttrs is h with attrs applied, made at the first record and kept
	// for the next ones (a logger may log from several goroutines).
	withAttrs atomic.Pointer[slog.Handler]
}

func (l *lazyAttrs) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

func (l *lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	return l.resolved().Handle(ctx, r)
}

func (l *lazyAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return l
	}
	return &lazyAttrs{h: l.h, attrs: append(slices.Clip(l.attrs), attrs...)}
}

func (l *lazyAttrs) WithGroup(name string) slog.Handler {
	if name == "" {
		return l
	}
	return &lazyAttrs{h: l.resolved().WithGroup(name)}
}

// resolved is the wrapped handler with the attributes kept aside applied.
func (l *lazyAttrs) resolved() slog.Handler {
	if len(l.attrs) == 0 {
		return l.h
	}
	if h := l.withAttrs.Load(); h != nil {
		return *h
	}
	h := l.h.WithAttrs(l.attrs)
	l.withAttrs.Store(&h)
	return h
}
