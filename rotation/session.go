package rotation

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// CheckSession runs on a freshly connected conn, logged in as c with the
// startup option -c role=<owner>, and confirms that PostgreSQL sees the
// session as intended: session_user is the executing role c.Username, and
// current_user is owner, so that every object the session creates is owned
// by the owner role (DESIGN.md §1, §2 fact 1). Connecting already proves
// membership (a non-member fails at startup with 42501, fact 2); this check
// catches a connection routed to the wrong role, e.g. by a pooler in front.
// A mismatch is a *ValidationError.
func CheckSession(ctx context.Context, conn *pgconn.PgConn, c Credential, owner string) error {
	results, err := conn.Exec(ctx, "SELECT session_user, current_user").ReadAll()
	if err != nil {
		return &ValidationError{Reason: "querying session_user: " + err.Error(), Err: err}
	}
	if len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) != 2 {
		return &ValidationError{Reason: "querying session_user: unexpected result shape"}
	}
	row := results[0].Rows[0]
	sessionUser, currentUser := string(row[0]), string(row[1])
	if sessionUser != c.Username {
		return &ValidationError{Reason: fmt.Sprintf("session_user is %s, expected %s", sessionUser, c.Username)}
	}
	if currentUser != owner {
		return &ValidationError{Reason: fmt.Sprintf("acts as %s, not as the owner role %s", currentUser, owner)}
	}
	return nil
}
