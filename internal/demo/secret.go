package demo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// secretDir is a credential directory laid out exactly as kubelet lays out a
// Secret volume:
//
//	..2026_11_29_04_00_00.000000001/username   the current version's files
//	..2026_11_29_04_00_00.000000001/password
//	..data     -> ..2026_11_29_04_00_00.000000001
//	username   -> ..data/username
//	password   -> ..data/password
//
// A new version is published the way kubelet's AtomicWriter does it: write
// a new timestamped directory, point a "..data_tmp" symlink at it, rename
// that over "..data" (the one atomic step), then remove the old version. A
// watch on the files themselves dies at that point; pgrotate must watch the
// directory (DESIGN.md §2.7), which is exactly what the demo exercises.
type secretDir struct {
	path    string
	version string // name of the current timestamped directory, "" before the first write
}

const (
	dataLink    = "..data"
	dataTmpLink = "..data_tmp"
)

// secretKeys are the files of the Secret, in the order they are written.
var secretKeys = []string{"username", "password"}

// newSecretDir makes an empty credential directory at path (mode 0700).
func newSecretDir(path string) (*secretDir, error) {
	if err := os.Mkdir(path, 0o700); err != nil {
		return nil, fmt.Errorf("creating credential directory: %w", err)
	}
	return &secretDir{path: path}, nil
}

// publish makes username and password the current version.
func (s *secretDir) publish(username, password string) error {
	version, err := s.writeVersion(map[string]string{"username": username, "password": password})
	if err != nil {
		return fmt.Errorf("writing credential version: %w", err)
	}
	if err := s.swapData(version); err != nil {
		_ = os.RemoveAll(filepath.Join(s.path, version))
		return fmt.Errorf("publishing credential version: %w", err)
	}
	if s.version == "" {
		if err := s.linkKeys(); err != nil {
			return fmt.Errorf("linking credential files: %w", err)
		}
	}
	old := s.version
	s.version = version
	if old != "" {
		if err := os.RemoveAll(filepath.Join(s.path, old)); err != nil {
			return fmt.Errorf("removing old credential version: %w", err)
		}
	}
	return nil
}

// writeVersion writes the files into a new timestamped directory named as
// kubelet names them ("..2006_01_02_15_04_05.<random>") and returns its name.
func (s *secretDir) writeVersion(files map[string]string) (string, error) {
	dir, err := os.MkdirTemp(s.path, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return "", err
	}
	for _, key := range secretKeys {
		if err := writeFileSync(filepath.Join(dir, key), files[key]); err != nil {
			_ = os.RemoveAll(dir)
			return "", err
		}
	}
	return filepath.Base(dir), nil
}

// swapData points ..data at version with a rename, which replaces the old
// link atomically: a reader sees either the old or the new version.
func (s *secretDir) swapData(version string) error {
	tmp := filepath.Join(s.path, dataTmpLink)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Symlink(version, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.path, dataLink))
}

// linkKeys creates the user-visible symlinks through ..data, once.
func (s *secretDir) linkKeys() error {
	for _, key := range secretKeys {
		if err := os.Symlink(filepath.Join(dataLink, key), filepath.Join(s.path, key)); err != nil {
			return err
		}
	}
	return nil
}

// writeFileSync writes a mode 0600 file and syncs it, so the version is
// complete on disk before ..data points at it.
func writeFileSync(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if syncErr := f.Sync(); err == nil {
		err = syncErr
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return err
}
