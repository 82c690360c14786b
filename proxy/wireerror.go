package proxy

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgrotate/pgrotate/auth"
)

// SQLSTATE codes pgrotate sends itself (PostgreSQL's errcodes.txt).
const (
	codeInvalidPassword       = "28P01"
	codeInvalidAuthSpec       = "28000"
	codeProtocolViolation     = "08P01"
	codeConnectionFailure     = "08006"
	codeInvalidCatalogName    = "3D000"
	codeTooManyConnections    = "53300"
	codeAdminShutdown         = "57P01"
	codeInsufficientPrivilege = "42501"
	codeInvalidStatementName  = "26000"
	codeFeatureNotSupported   = "0A000"
	codeInternalError         = "XX000"
)

// WireError is an error meant for the client, with the SQLSTATE and the text
// it should see. Everything else about a failure stays in pgrotate's log.
type WireError struct {
	Severity string // ERROR or FATAL
	Code     string
	Message  string
	Detail   string
	Hint     string
	Cause    error // for the log only; never sent
}

func (e *WireError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s (SQLSTATE %s): %v", e.Message, e.Code, e.Cause)
	}
	return fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
}

func (e *WireError) Unwrap() error { return e.Cause }

// fatal builds a FATAL WireError.
func fatal(code, format string, args ...any) *WireError {
	return &WireError{Severity: "FATAL", Code: code, Message: fmt.Sprintf(format, args...)}
}

// toWire is the one place where a Go error becomes what a client sees. Its
// messages name nothing upstream: no host, no executing role, no password.
func toWire(err error) *WireError {
	var we *WireError
	var failed *auth.FailedError
	var proto *auth.ProtocolError
	var up *upstreamError
	switch {
	case errors.As(err, &we):
		return we
	case errors.As(err, &failed):
		return withCause(fatal(codeInvalidPassword, "password authentication failed for user %q", failed.User), err)
	case errors.As(err, &proto):
		return withCause(fatal(codeProtocolViolation, "invalid authentication message"), err)
	case errors.As(err, &up):
		w := fatal(codeConnectionFailure, "pgrotate could not connect to the database server")
		w.Hint = "The proxy's log has the reason."
		return withCause(w, err)
	case errors.Is(err, errNoCredential):
		w := fatal(codeConnectionFailure, "pgrotate has no working database credential yet")
		w.Hint = "The proxy's log has the reason."
		return withCause(w, err)
	case errors.Is(err, context.DeadlineExceeded):
		return withCause(fatal(codeConnectionFailure, "timed out waiting for a server connection"), err)
	default:
		return withCause(fatal(codeInternalError, "internal error in pgrotate"), err)
	}
}

// refusedSetting is the client's view of PostgreSQL refusing one of the
// client's own settings (an unknown TimeZone, say): PostgreSQL's code and
// message, as a direct connection would have shown them at startup. Other
// failures keep their error for toWire.
func refusedSetting(err error, doing string) error {
	var se *serverError
	if errors.As(err, &se) {
		return &WireError{Severity: "FATAL", Code: se.Code, Message: se.Message, Detail: se.Detail, Hint: se.Hint, Cause: err}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

func withCause(w *WireError, cause error) *WireError {
	w.Cause = cause
	return w
}

// errorResponse encodes w as the client will see it.
func errorResponse(w *WireError) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{
		Severity:            w.Severity,
		SeverityUnlocalized: w.Severity,
		Code:                w.Code,
		Message:             w.Message,
		Detail:              w.Detail,
		Hint:                w.Hint,
	}
}
