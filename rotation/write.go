package rotation

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// credentialFileMode is the mode of every file WriteCredential creates: the
// files hold a password.
const credentialFileMode = 0o600

// WriteCredential replaces the credential at path atomically, in the layout
// the source already has, so that a reader (pgrotate's watcher, kubelet's
// consumers, a Vault-agent-style reader) sees either the old credential or
// the new one, never half of each:
//
//   - a directory with a `..data` symlink (a Kubernetes Secret volume): a new
//     timestamped directory holding every key, then `..data` swapped to it
//     with a rename, as kubelet's AtomicWriter does; `username` and
//     `password` symlinks are created when missing;
//   - a plain directory: each file written to a temp file, fsynced and
//     renamed into place (password first: a reader in between sees a pair
//     that fails validation and is never used);
//   - a JSON file: unknown keys of the existing object (AWS's "engine",
//     "host") are kept;
//   - a URL file: everything but the user and password is kept.
//
// A path that does not exist yet is created as format says; with FormatAuto
// a name ending in ".json" is a JSON file and anything else a directory.
// Only the username and password are written; host, port and dbname keys
// already in the source are kept. Host, Port and DBName of c are used only
// for a URL file that does not exist yet, which needs them.
func WriteCredential(path string, format Format, c Credential) error {
	if _, reason := (fields{username: c.Username, password: c.Password}).credential(); reason != "" {
		return &SourceError{Path: path, Reason: "refusing to write: " + reason}
	}
	f, err := writeFormat(path, format)
	if err != nil {
		return err
	}
	switch f {
	case FormatDir:
		return writeDir(path, c)
	case FormatJSON:
		return writeJSON(path, c)
	default:
		return writeURL(path, c)
	}
}

// writeFormat decides the layout to write at path.
func writeFormat(path string, format Format) (Format, error) {
	if !format.valid() {
		return "", &SourceError{Path: path, Reason: "unknown format " + string(format)}
	}
	info, err := os.Stat(path)
	switch {
	case err == nil && info.IsDir():
		return FormatDir, nil
	case err == nil && (format == FormatAuto || format == ""):
		data, err := os.ReadFile(path)
		if err != nil {
			return "", fsError(path, err)
		}
		if f := sniff(data); f != "" {
			return f, nil
		}
		return "", &SourceError{Path: path, Reason: "is neither JSON nor a URL; set credentials.format"}
	case err == nil:
		return format, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fsError(path, err)
	case format == FormatAuto || format == "":
		if strings.HasSuffix(path, ".json") {
			return FormatJSON, nil
		}
		return FormatDir, nil
	}
	return format, nil
}

// writeFileAtomic writes data to a temp file next to path, fsyncs it,
// renames it over path and fsyncs the directory, so that a crash leaves
// either the old file or the new one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing credential: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := tmp.Chmod(credentialFileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing credential: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing credential: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing credential: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing credential: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing credential: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing credential directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing credential directory: %w", err)
	}
	return nil
}

// writeJSON rewrites a JSON credential, keeping the keys it does not own.
// An existing "user" key is updated in place of "username".
func writeJSON(path string, c Credential) error {
	obj := map[string]json.RawMessage{}
	if data, err := os.ReadFile(path); err == nil {
		if o, reason := decodeObject(data); reason == "" {
			obj = o
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fsError(path, err)
	}
	userKey := "username"
	if _, ok := obj["username"]; !ok && has(obj, "user") {
		userKey = "user"
	}
	set := func(k, v string) {
		b, _ := json.Marshal(v) // marshalling a string cannot fail
		obj[k] = b
	}
	set(userKey, c.Username)
	set("password", c.Password)
	data, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		return fmt.Errorf("writing credential: encoding JSON: %w", err)
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// writeURL rewrites a URL credential, keeping host, port, database and
// query parameters of the existing URL.
func writeURL(path string, c Credential) error {
	u := &url.URL{Scheme: "postgresql", Path: "/" + c.DBName}
	switch {
	case c.Host != "" && c.Port != 0:
		u.Host = net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	case strings.Contains(c.Host, ":"): // an IPv6 address
		u.Host = "[" + c.Host + "]"
	default:
		u.Host = c.Host
	}
	if data, err := os.ReadFile(path); err == nil {
		if old, err := url.Parse(strings.TrimSpace(string(data))); err == nil {
			u = old
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fsError(path, err)
	}
	q := u.Query()
	if q.Has("user") || q.Has("password") {
		q.Del("user")
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	u.User = url.UserPassword(c.Username, c.Password)
	return writeFileAtomic(path, []byte(u.String()+"\n"))
}
