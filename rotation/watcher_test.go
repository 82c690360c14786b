package rotation

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// watchHarness runs a Watcher on a real directory with real fsnotify and
// collects what it delivers. Its poll is an hour unless a test sets one, so
// a delivery proves an event was seen.
type watchHarness struct {
	w    *Watcher
	got  chan Credential
	logs *logRecorder
}

func startWatcher(t *testing.T, cfg WatchConfig) *watchHarness {
	t.Helper()
	logs, logger := newLogRecorder(t)
	h := &watchHarness{got: make(chan Credential, 64), logs: logs}
	cfg.Logger = logger
	cfg.OnChange = func(c Credential) { h.got <- c }
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Hour
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = 20 * time.Millisecond
	}
	w, err := NewWatcher(cfg)
	must(t, err)
	h.w = w
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	})
	return h
}

// expect waits for the next delivery and checks it; the timeout only guards
// against a hang.
func (h *watchHarness) expect(t *testing.T, want Credential) {
	t.Helper()
	select {
	case got := <-h.got:
		if !got.Equal(want) {
			t.Fatalf("delivered %s, want %s (passwords equal: %v)", got, want, got.Password == want.Password)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no delivery of %s", want)
	}
}

func cred(user, pw string) Credential { return Credential{Username: user, Password: pw} }

func kubeFiles(c Credential) map[string]string {
	return map[string]string{"username": c.Username + "\n", "password": c.Password + "\n"}
}

func jsonOf(c Credential) string {
	return `{"username":"` + c.Username + `","password":"` + c.Password + `"}`
}

// TestWatcherKubernetesSecretSwap follows kubelet's AtomicWriter: the events
// are for `..data`, never for `password`, and a password-only change is a
// change.
func TestWatcherKubernetesSecretSwap(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bookstore")
	writeKubeSecret(t, dir, kubeFiles(cred("bookstore_user_0001", secret+"1")))
	h := startWatcher(t, WatchConfig{Path: dir})
	h.expect(t, cred("bookstore_user_0001", secret+"1"))

	writeKubeSecret(t, dir, kubeFiles(cred("bookstore_user_0002", secret+"2")))
	h.expect(t, cred("bookstore_user_0002", secret+"2"))

	writeKubeSecret(t, dir, kubeFiles(cred("bookstore_user_0002", secret+"3")))
	h.expect(t, cred("bookstore_user_0002", secret+"3"))
}

// TestWatcherFileInSecretVolume watches one key of a Secret volume as a JSON
// file: the swap of `..data` in its directory is what signals the change.
func TestWatcherFileInSecretVolume(t *testing.T) {
	dir := t.TempDir()
	writeKubeSecret(t, dir, map[string]string{"credentials.json": jsonOf(cred("bookstore_user_0001", secret))})
	h := startWatcher(t, WatchConfig{Path: filepath.Join(dir, "credentials.json"), Format: FormatJSON})
	h.expect(t, cred("bookstore_user_0001", secret))

	writeKubeSecret(t, dir, map[string]string{"credentials.json": jsonOf(cred("bookstore_user_0002", secret))})
	h.expect(t, cred("bookstore_user_0002", secret))
}

// TestWatcherRenameIntoPlace follows Vault agent, which renames a temporary
// file over the credential file: a watch on the file itself would die.
func TestWatcherRenameIntoPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bookstore.json")
	writeFile(t, path, jsonOf(cred("bookstore_user_0001", secret)))
	h := startWatcher(t, WatchConfig{Path: path})
	h.expect(t, cred("bookstore_user_0001", secret))

	for _, user := range []string{"bookstore_user_0002", "bookstore_user_0003"} {
		renameInto(t, path, jsonOf(cred(user, secret)))
		h.expect(t, cred(user, secret))
	}
}

// TestWatcherTruncateThenWrite follows an editor: the empty file in between
// is read, logged and never delivered.
func TestWatcherTruncateThenWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bookstore.json")
	writeFile(t, path, jsonOf(cred("bookstore_user_0001", secret)))
	h := startWatcher(t, WatchConfig{Path: path})
	h.expect(t, cred("bookstore_user_0001", secret))

	must(t, os.Truncate(path, 0))
	h.w.Reread()
	h.logs.waitFor(t, 0, "WARN", "credential source unreadable", "is empty")
	writeFile(t, path, jsonOf(cred("bookstore_user_0002", secret)))
	h.expect(t, cred("bookstore_user_0002", secret))
}

// TestWatcherTouchIsNotAChange: a touch or a rewrite of identical content is
// not delivered; the next delivery is the next real change.
func TestWatcherTouchIsNotAChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bookstore.json")
	content := jsonOf(cred("bookstore_user_0001", secret))
	writeFile(t, path, content)
	h := startWatcher(t, WatchConfig{Path: path})
	h.expect(t, cred("bookstore_user_0001", secret))

	now := time.Now()
	must(t, os.Chtimes(path, now, now))
	renameInto(t, path, content)
	h.logs.waitFor(t, 0, "content unchanged")
	renameInto(t, path, jsonOf(cred("bookstore_user_0002", secret)))
	h.expect(t, cred("bookstore_user_0002", secret))
}

// TestWatcherDeleteAndRecreate: the watch on a deleted directory dies with
// it; the watcher re-arms on the re-created one and keeps seeing swaps.
func TestWatcherDeleteAndRecreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bookstore")
	writeKubeSecret(t, dir, kubeFiles(cred("bookstore_user_0001", secret)))
	h := startWatcher(t, WatchConfig{Path: dir})
	h.expect(t, cred("bookstore_user_0001", secret))

	must(t, os.RemoveAll(dir))
	h.logs.waitFor(t, 0, "credential source unreadable")
	writeKubeSecret(t, dir, kubeFiles(cred("bookstore_user_0002", secret)))
	h.expect(t, cred("bookstore_user_0002", secret))
	writeKubeSecret(t, dir, kubeFiles(cred("bookstore_user_0003", secret)))
	h.expect(t, cred("bookstore_user_0003", secret))
}

// TestWatcherSourceAppearsLater: pgrotate may start before the volume is
// mounted; it watches the nearest existing ancestor until the source exists.
func TestWatcherSourceAppearsLater(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets", "bookstore")
	h := startWatcher(t, WatchConfig{Path: dir})
	h.logs.waitFor(t, 0, "WARN", "credential source unreadable", "does not exist")

	writeKubeSecret(t, dir, kubeFiles(cred("bookstore_user_0001", secret)))
	h.expect(t, cred("bookstore_user_0001", secret))
	writeKubeSecret(t, dir, kubeFiles(cred("bookstore_user_0002", secret)))
	h.expect(t, cred("bookstore_user_0002", secret))
}

// TestWatcherPollOnly: with fsnotify disabled (NFS), the poll alone still
// finds every change.
func TestWatcherPollOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bookstore.url")
	writeFile(t, path, "postgres://bookstore_user_0001:"+secret+"@db/bookstore")
	h := startWatcher(t, WatchConfig{Path: path, PollOnly: true, PollInterval: 50 * time.Millisecond})
	h.expect(t, Credential{Username: "bookstore_user_0001", Password: secret, Host: "db", DBName: "bookstore"})

	writeFile(t, path, "postgres://bookstore_user_0002:"+secret+"@db/bookstore")
	h.expect(t, Credential{Username: "bookstore_user_0002", Password: secret, Host: "db", DBName: "bookstore"})
}

// TestWatcherReread: SIGHUP forces a read even when no event or poll would.
func TestWatcherReread(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bookstore.json")
	writeFile(t, path, jsonOf(cred("bookstore_user_0001", secret)))
	h := startWatcher(t, WatchConfig{Path: path, PollOnly: true})
	h.expect(t, cred("bookstore_user_0001", secret))

	writeFile(t, path, jsonOf(cred("bookstore_user_0002", secret)))
	h.w.Reread()
	h.expect(t, cred("bookstore_user_0002", secret))
}

// TestNewWatcherRejectsBadConfig covers the configuration errors.
func TestNewWatcherRejectsBadConfig(t *testing.T) {
	onChange := func(Credential) {}
	for name, cfg := range map[string]WatchConfig{
		"no path":        {OnChange: onChange},
		"no OnChange":    {Path: "/x"},
		"unknown format": {Path: "/x", Format: "yaml", OnChange: onChange},
	} {
		if _, err := NewWatcher(cfg); err == nil {
			t.Errorf("%s: NewWatcher succeeded, want an error", name)
		}
	}
}
