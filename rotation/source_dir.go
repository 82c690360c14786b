package rotation

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// kubeDataDir is the symlink kubelet's AtomicWriter swaps to publish a new
// version of a Secret volume; every key is a symlink through it.
const kubeDataDir = "..data"

// readDir reads a directory of one file per field.
//
// In a Kubernetes Secret volume, `password` is a symlink to
// `..data/password` and `..data` is swapped atomically to a new timestamped
// directory. Reading `username` and then `password` through the top-level
// links could straddle a swap and pair the old username with the new
// password, so readDir resolves `..data` once and reads every file from that
// one version. If kubelet removes that version mid-read, the read fails and
// the watcher retries on the event that removal produces.
func readDir(dir string) (Credential, error) {
	base := dir
	if target, err := filepath.EvalSymlinks(filepath.Join(dir, kubeDataDir)); err == nil {
		base = target
	}
	var f fields
	for _, field := range []struct {
		dst      *string
		names    []string
		required bool
	}{
		{&f.username, []string{"username"}, true},
		{&f.password, []string{"password"}, true},
		{&f.host, []string{"host"}, false},
		{&f.port, []string{"port"}, false},
		{&f.dbname, []string{"dbname", "database"}, false},
	} {
		v, err := readKey(base, field.names)
		if errors.Is(err, fs.ErrNotExist) && field.required {
			return Credential{}, &SourceError{Path: dir, Reason: "missing file " + field.names[0], Err: err}
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Credential{}, fsError(dir, err)
		}
		*field.dst = v
	}
	c, reason := f.credential()
	if reason != "" {
		return Credential{}, &SourceError{Path: dir, Reason: reason}
	}
	return c, nil
}

// readKey returns the content of the first of names that exists in dir, with
// its trailing newline trimmed (`kubectl create secret --from-file` and
// `echo` both leave one).
func readKey(dir string, names []string) (string, error) {
	var err error
	for _, name := range names {
		var data []byte
		data, err = os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			return strings.TrimRight(string(data), "\r\n"), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", err
}
