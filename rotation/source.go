package rotation

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// Format names the layout of a credential source.
type Format string

// The source layouts pgrotate reads (DESIGN.md §3.4).
const (
	// FormatAuto picks dir for a directory, json for a file whose first
	// non-space byte is '{', and url for a file starting with postgres:// or
	// postgresql://.
	FormatAuto Format = "auto"
	// FormatDir is a directory of one file per field, as a Kubernetes Secret
	// volume lays it out: username, password, and optionally host, port,
	// dbname (or database).
	FormatDir Format = "dir"
	// FormatJSON is one JSON object: "username" (or "user"), "password", and
	// optionally "host", "port", "dbname" (or "database") — the layout of AWS
	// Secrets Manager's RDS secrets and of most Vault agent templates.
	FormatJSON Format = "json"
	// FormatURL is one libpq URL, postgres://user:password@host:port/dbname.
	FormatURL Format = "url"
)

// valid reports whether f is one of the known formats; "" counts as auto.
func (f Format) valid() bool {
	switch f {
	case "", FormatAuto, FormatDir, FormatJSON, FormatURL:
		return true
	}
	return false
}

// Read reads the credential at path as one unit.
//
// An empty file, a missing username or password, or a half-written JSON
// document is an error: a *SourceError naming the path and a reason, never
// the content.
func Read(path string, format Format) (Credential, error) {
	if !format.valid() {
		return Credential{}, &SourceError{Path: path, Reason: "unknown format " + string(format)}
	}
	info, err := os.Stat(path)
	if err != nil {
		return Credential{}, fsError(path, err)
	}
	if info.IsDir() {
		if format != FormatAuto && format != "" && format != FormatDir {
			return Credential{}, &SourceError{Path: path, Reason: "is a directory, but format " + string(format) + " expects a file"}
		}
		return readDir(path)
	}
	if format == FormatDir {
		return Credential{}, &SourceError{Path: path, Reason: "format dir expects a directory"}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Credential{}, fsError(path, err)
	}
	c, reason := parseContent(data, format)
	if reason != "" {
		return Credential{}, &SourceError{Path: path, Reason: reason}
	}
	return c, nil
}

// parseContent parses the content of a json or url file. It returns a
// non-empty reason instead of an error so that no parser's error text, which
// may quote the content, can reach a log.
func parseContent(data []byte, format Format) (Credential, string) {
	if format == FormatAuto || format == "" {
		format = sniff(data)
	}
	switch format {
	case FormatJSON:
		return parseJSON(data)
	case FormatURL:
		return parseURL(data)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return Credential{}, reasonEmpty
	}
	return Credential{}, "not a JSON object or a postgres:// URL"
}

// sniff picks json or url from the first non-space bytes, or "" when
// neither fits.
func sniff(data []byte) Format {
	data = bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\uFEFF")), " \t\r\n")
	switch {
	case bytes.HasPrefix(data, []byte("{")):
		return FormatJSON
	case bytes.HasPrefix(data, []byte("postgres://")), bytes.HasPrefix(data, []byte("postgresql://")):
		return FormatURL
	}
	return ""
}

// fsError turns a file-system error into a *SourceError. A *fs.PathError's
// text is an operation, a path and an errno: never file content.
func fsError(path string, err error) *SourceError {
	reason := "cannot be read"
	var errno syscall.Errno
	switch {
	case errors.Is(err, fs.ErrNotExist):
		reason = "does not exist"
	case errors.Is(err, fs.ErrPermission):
		reason = "permission denied"
	case errors.As(err, &errno):
		reason = "cannot be read: " + errno.Error()
	}
	return &SourceError{Path: path, Reason: reason, Err: err}
}
