package rotation

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a watcher, manager or fsnotify goroutine
// outlives its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
