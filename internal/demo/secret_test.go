package demo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretDirIsLaidOutLikeKubelet checks that the credential directory
// looks exactly like a Secret volume after each version kubelet publishes:
// the keys are links through ..data, ..data points at the one timestamped
// version left, and files and directory are private.
func TestSecretDirIsLaidOutLikeKubelet(t *testing.T) {
	s, err := newSecretDir(filepath.Join(t.TempDir(), "secret"))
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"bookstore_user_0001", "bookstore_user_0002"} {
		if err := s.publish(role, "pw-of-"+role); err != nil {
			t.Fatalf("publishing %s: %v", role, err)
		}
		entries, err := os.ReadDir(s.path)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) != 4 || !strings.HasPrefix(names[0], "..20") || names[1] != "..data" || names[2] != "password" || names[3] != "username" {
			t.Fatalf("directory holds %v, want [..<timestamp> ..data password username]", names)
		}
		assertLink(t, filepath.Join(s.path, "..data"), names[0])
		assertLink(t, filepath.Join(s.path, "username"), "..data/username")
		assertLink(t, filepath.Join(s.path, "password"), "..data/password")
		for key, want := range map[string]string{"username": role, "password": "pw-of-" + role} {
			assertFile(t, filepath.Join(s.path, key), want, 0o600)
		}
		assertMode(t, filepath.Join(s.path, names[0]), os.ModeDir|0o700)
	}
}

func assertLink(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.Readlink(path)
	if err != nil || got != want {
		t.Errorf("%s -> %q (err %v), want -> %q", filepath.Base(path), got, err, want)
	}
}

func assertFile(t *testing.T, path, want string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil || string(data) != want {
		t.Errorf("%s = %q (err %v), want %q", filepath.Base(path), data, err, want)
	}
	assertMode(t, path, mode)
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	if got := fi.Mode() & (os.ModeType | os.ModePerm); got != want {
		t.Errorf("%s: mode %v, want %v", filepath.Base(path), got, want)
	}
}
