package rotation

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// secretKeyNames are file names that suggest a key of a Kubernetes Secret
// mounted on its own rather than a file an agent rewrites in place.
var secretKeyNames = map[string]bool{
	"username": true, "password": true, "credentials": true, "credentials.json": true,
	"secret": true, "database-url": true, "database_url": true, "dsn": true, "url": true, "uri": true,
}

// Warnings returns human-readable start-up warnings about the source at
// path: a mount that will never update, and a source other users can read.
// It never fails; a path it cannot inspect yields no warning (Read reports
// that).
func Warnings(path string, format Format) []string {
	var out []string
	if singleFileMount(path) {
		out = append(out, fmt.Sprintf("credential source %s is a single-file mount; "+
			"if this is a Kubernetes subPath mount it will never update: mount the whole Secret as a directory", path))
	}
	for _, p := range readablePaths(path, format) {
		info, err := os.Stat(p)
		if err == nil && info.Mode().Perm()&0o004 != 0 {
			out = append(out, fmt.Sprintf("credential source %s is world-readable (mode %04o); "+
				"restrict it (Kubernetes: defaultMode: 0440)", p, info.Mode().Perm()))
		}
	}
	return out
}

// singleFileMount reports a regular file (not a symlink through `..data`)
// directly inside a directory without `..data`, whose name suggests a Secret
// key or which is itself a mount point. kubelet bind-mounts a subPath once
// and never updates it (DESIGN.md §2 fact 7).
func singleFileMount(path string) bool {
	info, err := os.Lstat(path)
	if err != nil || !info.Mode().IsRegular() {
		return false
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(path), kubeDataDir)); err == nil {
		return false
	}
	return secretKeyNames[strings.ToLower(filepath.Base(path))] || isMountPoint(path)
}

// readablePaths lists the path itself and, for a directory source, the
// password file in it: the ones whose mode matters.
func readablePaths(path string, format Format) []string {
	paths := []string{path}
	if info, err := os.Stat(path); err == nil && info.IsDir() && format != FormatJSON && format != FormatURL {
		paths = append(paths, filepath.Join(path, "password"))
	}
	return paths
}

// isMountPoint reports whether path is listed as a mount point in
// /proc/self/mountinfo (Linux); elsewhere it reports false.
func isMountPoint(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Field 5 is the mount point, with spaces escaped as \040.
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.ReplaceAll(fields[4], `\040`, " ") == abs {
			return true
		}
	}
	return false
}
