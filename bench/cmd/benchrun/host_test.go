package main

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

// The header names the kernel and the two settings that move the figures
// most, and leaves out what the host does not expose.
func TestDescribeHost(t *testing.T) {
	files := func(m map[string]string) func(string) (string, error) {
		return func(p string) (string, error) {
			if v, ok := m[p]; ok {
				return v, nil
			}
			return "", fs.ErrNotExist
		}
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"all", map[string]string{
			hostFiles.release:   "6.18.44-fc\n",
			hostFiles.autogroup: "1\n",
			hostFiles.thp:       "always [madvise] never\n",
		}, "Linux 6.18.44-fc (autogroup on, transparent huge pages madvise)"},
		{"autogroup off, no THP file", map[string]string{
			hostFiles.release:   "5.15.0\n",
			hostFiles.autogroup: "0\n",
		}, "Linux 5.15.0 (autogroup off)"},
		{"kernel only", map[string]string{hostFiles.release: "6.1.0\n"}, "Linux 6.1.0"},
		{"unreadable values left out", map[string]string{
			hostFiles.release:   "6.1.0\n",
			hostFiles.autogroup: "\n",
			hostFiles.thp:       "garbage\n",
		}, "Linux 6.1.0"},
		{"not Linux", map[string]string{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describeHost(files(tc.files)); got != tc.want {
				t.Errorf("describeHost = %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := readHostFile("/nonexistent/pgrotate"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("readHostFile of a missing file: %v", err)
	}
}

// The header's first line ends with the host, or with the CPUs when the
// host could not be described.
func TestHeaderNamesTheHost(t *testing.T) {
	info := runInfo{revision: "abc1234", postgresVersion: "15", bouncerVersion: "1.18.0", cpus: 2,
		settings: settings{jobs: 2, scale: 10, repeat: 1}}
	if got := header(info); !strings.Contains(got, "PgBouncer 1.18.0; 2 CPUs\n") {
		t.Errorf("header without a host:\n%s", got)
	}
	info.host = "Linux 6.1.0 (autogroup on)"
	if got := header(info); !strings.Contains(got, "; 2 CPUs; Linux 6.1.0 (autogroup on)\n") {
		t.Errorf("header with a host:\n%s", got)
	}
}
