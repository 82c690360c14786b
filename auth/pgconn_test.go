package auth

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestPgxClientsLogIn logs in with pgx's own SCRAM and md5 clients, through
// a real TCP connection, the way applications will reach pgrotate.
func TestPgxClientsLogIn(t *testing.T) {
	appVerifier, err := NewSCRAMVerifier("pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]Secret{
		"app":                 {mustParse(t, appVerifier)},
		"bookstore_user_0001": {mustParse(t, pgVectors[0].secret)},
		"auth_probe_md5":      {mustParse(t, pgMD5Vector)},
		"legacy":              {mustParse(t, MD5Secret("legacy", "old"))},
	}
	tests := []struct {
		name, user, password string
		allowMD5             bool
		wantReason           string // "" means the login succeeds
	}{
		{"scram, verifier made by pgrotate", "app", "pw", false, ""},
		{"scram, wrong password", "app", "wrong", false, "wrong password"},
		{"scram, verifier made by PostgreSQL", "bookstore_user_0001", "secret0001", false, ""},
		{"scram, PostgreSQL verifier, wrong password", "bookstore_user_0001", "secret0002", false, "wrong password"},
		{"unknown user", "nobody", "pw", false, "unknown user"},
		{"md5 allowed", "legacy", "old", true, ""},
		{"md5 allowed, PostgreSQL md5 hash", "auth_probe_md5", "secret0001", true, ""},
		{"md5 allowed, wrong password", "legacy", "new", true, "wrong password"},
		{"md5 not allowed", "legacy", "old", false, "md5 secret but md5 not allowed"},
		{"md5 allowed but the user has scram", "app", "pw", true, ""},
		{"md5 allowed, unknown user", "nobody", "pw", true, "unknown user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startTestServer(t, secrets, Options{AllowMD5: tt.allowMD5}, nil)
			err := connect(t, fmt.Sprintf("postgres://%s:%s@%s/db?sslmode=disable", tt.user, tt.password, srv.addr()))
			serverErr := srv.result(t)
			if tt.wantReason == "" {
				if err != nil || serverErr != nil {
					t.Fatalf("login failed: client %v, server %v", err, serverErr)
				}
				return
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
				t.Errorf("client got %v, want SQLSTATE 28P01", err)
			}
			wantFailed(t, serverErr, tt.user, tt.wantReason)
		})
	}
}

func mustParse(t testing.TB, s string) Secret {
	t.Helper()
	secret, err := ParseSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func wantFailed(t *testing.T, err error, user, reason string) {
	t.Helper()
	var failed *FailedError
	if !errors.As(err, &failed) {
		t.Fatalf("Authenticate returned %v, want a FailedError", err)
	}
	if failed.User != user || failed.Reason != reason {
		t.Errorf("FailedError{%q, %q}, want {%q, %q}", failed.User, failed.Reason, user, reason)
	}
}
