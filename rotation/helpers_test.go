package rotation

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

var kubeVersion atomic.Int64

// writeKubeSecret publishes files into dir the way kubelet's AtomicWriter
// updates a Secret volume: write a new timestamped directory, point
// `..data_tmp` at it, rename that over `..data`, make sure each key is a
// symlink through `..data`, and remove the previous version.
func writeKubeSecret(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o755))
	version := fmt.Sprintf("..2026_11_29_04_00_00.%09d", kubeVersion.Add(1))
	must(t, os.Mkdir(filepath.Join(dir, version), 0o755))
	for name, content := range files {
		must(t, os.WriteFile(filepath.Join(dir, version, name), []byte(content), 0o400))
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	must(t, os.Symlink(version, tmp))
	must(t, os.Rename(tmp, filepath.Join(dir, "..data")))
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			must(t, os.Symlink(filepath.Join("..data", name), link))
		}
	}
	if old != "" {
		must(t, os.RemoveAll(filepath.Join(dir, old)))
	}
}

// writeFile writes content to path, creating parent directories.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(content), 0o600))
}

// renameInto writes content to a temporary file next to path and renames it
// over path, as Vault agent does.
func renameInto(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, content)
	must(t, os.Rename(tmp, path))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
