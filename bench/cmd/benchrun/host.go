package main

import (
	"os"
	"strings"
)

// The kernel settings that move both poolers' figures most on a small
// machine, read for the report's header so that runs on different hosts
// can be told apart: autogroup decides who preempts whom (see
// ownSession), and transparent huge pages decide what memory costs every
// process of the run (bench/README.md, "The 256-client gap").
var hostFiles = struct{ release, autogroup, thp string }{
	release:   "/proc/sys/kernel/osrelease",
	autogroup: "/proc/sys/kernel/sched_autogroup_enabled",
	thp:       "/sys/kernel/mm/transparent_hugepage/enabled",
}

// describeHost says which kernel ran the benchmark and how it schedules and
// pages, as far as read can tell; what it cannot read is left out.
func describeHost(read func(path string) (string, error)) string {
	release, err := read(hostFiles.release)
	if err != nil {
		return ""
	}
	var notes []string
	if v, err := read(hostFiles.autogroup); err == nil {
		if state, ok := map[string]string{"0": "off", "1": "on"}[strings.TrimSpace(v)]; ok {
			notes = append(notes, "autogroup "+state)
		}
	}
	if v, err := read(hostFiles.thp); err == nil {
		if mode := selectedMode(v); mode != "" {
			notes = append(notes, "transparent huge pages "+mode)
		}
	}
	out := "Linux " + strings.TrimSpace(release)
	if len(notes) > 0 {
		out += " (" + strings.Join(notes, ", ") + ")"
	}
	return out
}

// selectedMode is the bracketed choice of a sysfs setting such as
// "always [madvise] never".
func selectedMode(s string) string {
	_, rest, ok := strings.Cut(s, "[")
	if !ok {
		return ""
	}
	mode, _, ok := strings.Cut(rest, "]")
	if !ok {
		return ""
	}
	return mode
}

func readHostFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
