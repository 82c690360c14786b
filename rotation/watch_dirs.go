package rotation

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// notifier is a nil-safe holder of the fsnotify watcher, which Run re-creates
// if fsnotify's event channel ever closes.
type notifier struct {
	pollOnly bool
	fsw      *fsnotify.Watcher
}

func (n *notifier) events() <-chan fsnotify.Event {
	if n.fsw == nil {
		return nil // a nil channel blocks forever: poll only
	}
	return n.fsw.Events
}

func (n *notifier) errors() <-chan error {
	if n.fsw == nil {
		return nil
	}
	return n.fsw.Errors
}

func (n *notifier) close() {
	if n.fsw != nil {
		_ = n.fsw.Close()
		n.fsw = nil
	}
}

// arm makes the fsnotify watches match the directories that matter now. It
// runs before every read because the set changes: a missing directory
// appears, a deleted one is re-created (its old inotify watch died with it),
// a file path becomes a directory. fsnotify's Add is idempotent, so arming
// an already-watched directory is one cheap syscall.
func (w *Watcher) arm(n *notifier) {
	if n.pollOnly {
		return
	}
	if n.fsw == nil {
		fsw, err := fsnotify.NewWatcher()
		if err != nil {
			w.logArmError(fmtErr("starting fsnotify; polling only", err))
			return
		}
		n.fsw = fsw
	}
	want := watchDirs(w.cfg.Path)
	for _, d := range n.fsw.WatchList() {
		if !slices.Contains(want, d) {
			_ = n.fsw.Remove(d)
		}
	}
	for _, d := range want {
		if err := n.fsw.Add(d); err != nil {
			w.logArmError(fmtErr("watching "+d, err))
			return
		}
	}
	w.armErr = ""
}

// logArmError warns once per distinct error; the poll keeps working.
func (w *Watcher) logArmError(err error) {
	if err.Error() != w.armErr {
		w.armErr = err.Error()
		w.log.Warn("cannot watch credential source; relying on the poll", "err", err)
	}
}

// watchDirs returns the directories whose events can signal a change of
// path: for a directory source the directory itself (kubelet's `..data`
// swap happens inside it) and its parent (the directory being replaced);
// for a file source its parent (a watch on the file dies when Vault agent
// renames a new file over it, DESIGN.md §2 fact 7). A directory that does
// not exist yet is replaced by its nearest existing ancestor.
func watchDirs(path string) []string {
	dirs := []string{filepath.Dir(path)}
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		dirs = []string{path, filepath.Dir(path)}
	}
	var out []string
	for _, d := range dirs {
		if d = nearestExisting(d); !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// nearestExisting returns dir, or its nearest ancestor that exists.
func nearestExisting(dir string) string {
	for {
		_, err := os.Stat(dir)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

// relevant reports whether ev may change what Read returns for path.
// Attribute changes (a touch) are not; the content hash would discard them
// anyway, and a permission fix is picked up by the poll.
func relevant(ev fsnotify.Event, path string) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	switch {
	case ev.Name == path, filepath.Dir(ev.Name) == path:
		return true // the source itself, or an entry of a directory source
	case filepath.Base(ev.Name) == kubeDataDir && filepath.Dir(ev.Name) == filepath.Dir(path):
		return true // a file source that is one key of a Secret volume
	case strings.HasPrefix(path, ev.Name+string(filepath.Separator)):
		return true // an ancestor appeared or vanished
	}
	return false
}

// fmtErr wraps err with a lowercase "doing x: " prefix.
func fmtErr(doing string, err error) error {
	return fmt.Errorf("%s: %w", doing, err)
}
