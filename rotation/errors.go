package rotation

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// SourceError reports a credential source that could not be read or parsed.
//
// Reason is a fixed description ("missing password", "truncated JSON (file
// may be half-written)") that never quotes the source's content, so the error
// is safe to log even when the file holds a password.
type SourceError struct {
	Path   string
	Reason string
	// Err is the underlying file-system error, if any (never a parser error,
	// whose text could quote the content).
	Err error
}

// Error returns "credential source <path>: <reason>".
func (e *SourceError) Error() string {
	return "credential source " + e.Path + ": " + e.Reason
}

// Unwrap returns the underlying file-system error, so that
// errors.Is(err, fs.ErrNotExist) works.
func (e *SourceError) Unwrap() error { return e.Err }

// ValidationError reports a candidate credential that could log in but must
// not be promoted, or that PostgreSQL refused.
type ValidationError struct {
	Reason string
	Err    error
}

// Error returns "validating credential: <reason>".
func (e *ValidationError) Error() string {
	return "validating credential: " + e.Reason
}

// Unwrap returns the underlying error, if any.
func (e *ValidationError) Unwrap() error { return e.Err }

// SQLState returns the SQLSTATE of the PostgreSQL error behind e, or "".
func (e *ValidationError) SQLState() string {
	var pgErr *pgconn.PgError
	if errors.As(e.Err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
