package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDemoRotatesWithoutFailures runs the demo for real, as `pgrotate demo
// -duration 8s -every 2s -clients 4 -quiet` would, and checks what it
// promises: rotations under load with zero failed transactions, nothing
// owned by an executing role, only the current executing role left, the
// numbers in the printed summary, and nothing left behind.
func TestDemoRotatesWithoutFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	sum, err := Run(ctx, Config{Duration: 8 * time.Second, Every: 2 * time.Second, Clients: 4, Quiet: true}, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := sum.Completed(); got < 2 {
		t.Errorf("completed rotations = %d, want at least 2; problems: %v", got, sum.Problems)
	}
	if sum.Committed == 0 {
		t.Error("no transaction committed through pgrotate")
	}
	if sum.Failed != 0 {
		t.Errorf("failed transactions = %d, want 0: %v", sum.Failed, sum.FirstErrors)
	}
	if sum.Reassigned() != 0 {
		t.Errorf("REASSIGN OWNED had to move %d objects from old roles, want 0", sum.Reassigned())
	}
	if len(sum.ForeignOwned) != 0 {
		t.Errorf("objects not owned by %s: %v", ownerRole, sum.ForeignOwned)
	}
	if want := []string{roleName(len(sum.Rotations) + 1)}; fmt.Sprint(sum.RolesLeft) != fmt.Sprint(want) {
		t.Errorf("executing roles left = %v, want %v", sum.RolesLeft, want)
	}
	if !sum.OK() {
		t.Error("Summary.OK() = false, want true")
	}
	for _, want := range []string{
		fmt.Sprintf("rotations: %d (%d completed", len(sum.Rotations), sum.Completed()),
		fmt.Sprintf("transactions committed: %d ", sum.Committed),
		"failed transactions: 0\n",
		"objects not owned by bookstore_owner: 0\n",
		"executing roles left: 1 (" + sum.RolesLeft[0] + ")",
		"result: OK",
	} {
		if !strings.Contains(squeeze(out.String()), want) {
			t.Errorf("summary does not contain %q", want)
		}
	}
	assertRemoved(t, sum.WorkDir, sum.ClusterDir)
}

// assertRemoved checks that the run's temporary directories are gone.
func assertRemoved(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if d == "" {
			t.Error("Summary does not name a temporary directory")
			continue
		}
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind (stat: %v)", d, err)
		}
	}
}

// squeeze collapses the summary's column padding to one space.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}
