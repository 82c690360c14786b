package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// exchange must end, whatever the client does.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
