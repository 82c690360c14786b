package rotation

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"path/filepath"
	"time"
)

// Watcher defaults.
const (
	DefaultPollInterval = 10 * time.Second
	DefaultDebounce     = 200 * time.Millisecond
)

// WatchConfig configures a Watcher.
type WatchConfig struct {
	Path   string
	Format Format
	// PollInterval is the period of the fallback re-read, which also covers
	// missed events (default 10s).
	PollInterval time.Duration
	// Debounce coalesces bursts of events — an editor's truncate and write,
	// kubelet's `..data` swap — into one read (default 200ms).
	Debounce time.Duration
	// PollOnly disables fsnotify and relies on the poll alone, for file
	// systems that deliver no inotify events (NFS, some FUSE mounts).
	PollOnly bool
	Logger   *slog.Logger
	// OnChange receives each new credential. It is called from the watcher
	// goroutine, never concurrently; a slow OnChange delays the next read.
	OnChange func(Credential)
}

// Watcher watches a source and calls OnChange with each new, complete,
// readable credential whose content differs from the last one delivered.
type Watcher struct {
	cfg    WatchConfig
	log    *slog.Logger
	reread chan struct{}

	// The fields below are owned by the Run goroutine.
	last      [sha256.Size]byte
	delivered bool
	lastErr   string // the last read error, to log each distinct one once
	warned    bool   // lastErr was logged at warn level
	armErr    string // the last error arming a watch
}

// NewWatcher validates cfg, fills in defaults and returns a Watcher; call Run
// to start it.
func NewWatcher(cfg WatchConfig) (*Watcher, error) {
	if cfg.Path == "" {
		return nil, errors.New("creating credential watcher: path is empty")
	}
	if cfg.OnChange == nil {
		return nil, errors.New("creating credential watcher: OnChange is nil")
	}
	if !cfg.Format.valid() {
		return nil, errors.New("creating credential watcher: unknown format " + string(cfg.Format))
	}
	abs, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmtErr("creating credential watcher", err)
	}
	cfg.Path = abs
	if cfg.Format == "" {
		cfg.Format = FormatAuto
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{cfg: cfg, log: log.With("source", abs), reread: make(chan struct{}, 1)}, nil
}

// Reread forces an immediate read, as on SIGHUP. It never blocks; requests
// made while one is pending are coalesced.
func (w *Watcher) Reread() {
	select {
	case w.reread <- struct{}{}:
	default:
	}
}

// Run watches until ctx is done and then returns nil. It delivers the
// initial credential, if readable, as the first OnChange. No failure is
// fatal: an unreadable source is logged and retried, and if fsnotify cannot
// be used the watcher falls back to polling.
func (w *Watcher) Run(ctx context.Context) error {
	n := &notifier{pollOnly: w.cfg.PollOnly}
	defer n.close()
	w.arm(n)
	w.check(true)

	poll := time.NewTicker(w.cfg.PollInterval)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-n.events():
			if !ok {
				n.close() // re-created on the next arm
				continue
			}
			if relevant(ev, w.cfg.Path) {
				debounce.Reset(w.cfg.Debounce)
			}
		case err, ok := <-n.errors():
			if ok {
				w.log.Warn("credential watch error; re-arming", "err", err)
			}
			w.arm(n)
		case <-debounce.C:
			w.arm(n)
			w.check(false)
		case <-poll.C:
			w.arm(n)
			w.check(true)
		case <-w.reread:
			w.arm(n)
			w.check(true)
		}
	}
}

// check reads the source and delivers it if its content changed. loud is
// false for reads triggered by events, which may see a file mid-write: their
// errors are logged at debug level, and a poll warns if the error persists.
func (w *Watcher) check(loud bool) {
	c, err := Read(w.cfg.Path, w.cfg.Format)
	if err != nil {
		w.logReadError(err, loud)
		return
	}
	w.lastErr, w.warned = "", false
	h := c.hash()
	if w.delivered && h == w.last {
		if !loud {
			w.log.Debug("credential source re-read; content unchanged")
		}
		return
	}
	w.last, w.delivered = h, true
	w.log.Debug("credential source read", "role", c.Username)
	w.cfg.OnChange(c)
}

// logReadError logs each distinct read error once at debug level and once at
// warn level. The error is a *SourceError or a file-system error, neither of
// which quotes the content.
func (w *Watcher) logReadError(err error, loud bool) {
	msg := err.Error()
	if msg != w.lastErr {
		w.lastErr, w.warned = msg, false
		if !loud {
			w.log.Debug("credential source unreadable; will retry", "err", msg)
		}
	}
	if loud && !w.warned {
		w.warned = true
		w.log.Warn("credential source unreadable; nothing taken from it (a current credential, if any, stays)", "err", msg)
	}
}
