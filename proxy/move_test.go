package proxy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A session whose move to the new credential failed, its old connection
// given up, ends with 57P01: the code pools and drivers reconnect on, as
// after drain_timeout. Why it failed goes to pgrotate's log (the error's
// cause), not to the client.
func TestMoveFailedEndsTheSessionWithAdminShutdown(t *testing.T) {
	cause := fmt.Errorf("moving session: %w", &serverError{Severity: "ERROR", Code: "53300", Message: "too many connections for role \"bookstore_user_0002\""})
	err := moveFailed(cause)
	w := toWire(err)
	if w.Severity != "FATAL" || w.Code != codeAdminShutdown {
		t.Errorf("client sees %s %s; want FATAL %s", w.Severity, w.Code, codeAdminShutdown)
	}
	if seen := w.Message + w.Detail + w.Hint; strings.Contains(seen, "bookstore_user_0002") {
		t.Errorf("client sees the executing role: %q", seen)
	}
	if !errors.Is(err, cause) || !strings.Contains(err.Error(), "too many connections") {
		t.Errorf("the logged error %q lost its cause", err)
	}
}
