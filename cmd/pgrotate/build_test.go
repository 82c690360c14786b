package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// pgrotate runs on arm64 servers too (AWS Graviton, Ampere, a Docker build
// on an Apple Silicon Mac), and its event loop makes raw Linux system calls,
// some of which that port does not have (epoll_wait, poll). So the suite
// builds it for linux/arm64 the way the Dockerfile builds it, which takes
// about a minute with a cold build cache.
func TestBuildsForLinuxARM64(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiling takes about a minute")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to cross-compile: %v", err)
	}
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", filepath.Join(t.TempDir(), "pgrotate"), ".")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build for linux/arm64: %v\n%s", err, out)
	}
}
