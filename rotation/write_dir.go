package rotation

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// writeDir writes a directory credential: the Kubernetes layout when the
// directory has a `..data` link, one atomic file per key otherwise.
func writeDir(dir string, c Credential) error {
	if _, err := os.Lstat(filepath.Join(dir, kubeDataDir)); err == nil {
		return writeKubeVolume(dir, c)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("writing credential: %w", err)
	}
	// Password before username: a reader between the two renames pairs the
	// old role with the new password, which fails validation and is never
	// used; the second rename brings the right pair.
	if err := writeFileAtomic(filepath.Join(dir, "password"), []byte(c.Password)); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "username"), []byte(c.Username))
}

// writeKubeVolume publishes a new version of a Kubernetes-style secret
// volume the way kubelet's AtomicWriter does
// (pkg/volume/util/atomic_writer.go): every key goes into a new
// `..<timestamp>` directory, a `..data_tmp` symlink to it is renamed over
// `..data` (the one atomic step), top-level key symlinks are created when
// missing, and the previous version is removed. Keys other than username
// and password are copied from the current version unchanged.
func writeKubeVolume(dir string, c Credential) error {
	dataLink := filepath.Join(dir, kubeDataDir)
	oldTarget, _ := os.Readlink(dataLink)
	files, err := currentVolumeFiles(dir, oldTarget)
	if err != nil {
		return err
	}
	files["username"], files["password"] = []byte(c.Username), []byte(c.Password)
	ts := ".." + time.Now().UTC().Format("2006_01_02_15_04_05.000000000")
	if err := writeVersion(filepath.Join(dir, ts), files); err != nil {
		return err
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink) // left by a crash
	if err := os.Symlink(ts, tmpLink); err != nil {
		return fmt.Errorf("writing credential: %w", err)
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		return fmt.Errorf("writing credential: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	for key := range files {
		link := filepath.Join(dir, key)
		if _, err := os.Lstat(link); errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink(filepath.Join(kubeDataDir, key), link); err != nil {
				return fmt.Errorf("writing credential: %w", err)
			}
		}
	}
	if oldTarget != "" && oldTarget != ts && filepath.Base(oldTarget) == oldTarget {
		_ = os.RemoveAll(filepath.Join(dir, oldTarget)) // only a stale copy is left behind on failure
	}
	return nil
}

// currentVolumeFiles reads every regular file of the current version.
func currentVolumeFiles(dir, target string) (map[string][]byte, error) {
	files := map[string][]byte{}
	if target == "" {
		return files, nil
	}
	version := target
	if !filepath.IsAbs(version) {
		version = filepath.Join(dir, target)
	}
	entries, err := os.ReadDir(version)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fsError(dir, err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(version, e.Name()))
		if err != nil {
			return nil, fsError(dir, err)
		}
		files[e.Name()] = data
	}
	return files, nil
}

// writeVersion writes one version directory and makes it durable.
func writeVersion(version string, files map[string][]byte) error {
	if err := os.Mkdir(version, 0o700); err != nil {
		return fmt.Errorf("writing credential: %w", err)
	}
	for name, data := range files {
		f, err := os.OpenFile(filepath.Join(version, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, credentialFileMode)
		if err != nil {
			return fmt.Errorf("writing credential: %w", err)
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing credential: %w", err)
		}
	}
	return syncDir(version)
}
