package rotation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgrotate/pgrotate/internal/pgcluster"
)

// dialAsOwner logs in to the cluster as c the way the proxy does: over TCP
// with scram-sha-256 and the startup option -c role=<owner>.
func dialAsOwner(ctx context.Context, cl *pgcluster.Cluster, c Credential, dbname, owner string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(cl.TCPURL(c.Username, c.Password, dbname))
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["options"] = "-c role=" + owner
	return pgconn.ConnectConfig(ctx, cfg)
}

// TestCheckSessionRealPostgres checks, against a real server, the facts
// validation rests on (DESIGN.md §2 facts 1 and 2): a member of the owner
// logs in acting as the owner; a non-member is refused at connect with
// 42501; a wrong password with 28P01. Then a Manager validating with that
// dial keeps a bad candidate out and promotes a good one.
func TestCheckSessionRealPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := pgcluster.Start(ctx, pgcluster.Options{})
	must(t, err)
	t.Cleanup(func() { must(t, cl.Stop()) })
	b := pgcluster.Bookstore{DB: "bookstore", Owner: "bookstore_owner"}
	member := cred("bookstore_user_0001", secret+"-member")
	intruder := cred("intruder", secret+"-intruder")
	must(t, cl.CreateBookstore(ctx, b))
	must(t, cl.CreateExecutingRole(ctx, b, member.Username, member.Password))
	must(t, cl.CreateLoginRole(ctx, intruder.Username, intruder.Password))

	t.Run("member acts as the owner", func(t *testing.T) {
		conn, err := dialAsOwner(ctx, cl, member, b.DB, b.Owner)
		must(t, err)
		defer conn.Close(ctx)
		must(t, CheckSession(ctx, conn, member, b.Owner))

		err = CheckSession(ctx, conn, member, "someone_else")
		wantValidationError(t, err, "acts as bookstore_owner, not as the owner role someone_else")
		err = CheckSession(ctx, conn, cred("bookstore_user_0002", secret), b.Owner)
		wantValidationError(t, err, "session_user is bookstore_user_0001, expected bookstore_user_0002")
	})

	for _, tt := range []struct {
		name, sqlstate, message string
		c                       Credential
		dbname                  string
	}{
		// The intruder may connect to "postgres", so only the role option
		// refuses it there: "permission denied to set role".
		{"non-member is refused at connect", "42501", "permission denied to set role", intruder, "postgres"},
		{"wrong password is refused", "28P01", "password authentication failed", cred(member.Username, secret+"-wrong"), b.DB},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := dialAsOwner(ctx, cl, tt.c, tt.dbname, b.Owner)
			if err == nil {
				conn.Close(ctx)
				t.Fatal("connected, want a refusal")
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != tt.sqlstate || !strings.Contains(pgErr.Message, tt.message) {
				t.Fatalf("connect error = %v, want SQLSTATE %s %q", err, tt.sqlstate, tt.message)
			}
			if got := (&ValidationError{Reason: "logging in", Err: err}).SQLState(); got != tt.sqlstate {
				t.Errorf("ValidationError.SQLState = %q, want %s", got, tt.sqlstate)
			}
			if strings.Contains(err.Error(), tt.c.Password) {
				t.Errorf("connect error leaks the password: %v", err)
			}
		})
	}

	t.Run("manager validates against the server", func(t *testing.T) {
		h := startManager(t, func(ctx context.Context, c Credential) error {
			conn, err := dialAsOwner(ctx, cl, c, b.DB, b.Owner)
			if err != nil {
				return &ValidationError{Reason: "logging in: " + err.Error(), Err: err}
			}
			defer conn.Close(context.Background())
			return CheckSession(ctx, conn, c, b.Owner)
		})
		h.m.Offer(cred(member.Username, secret+"-wrong"))
		h.logs.waitFor(t, 0, "candidate rejected", "28P01")
		if _, ok := h.m.Current(); ok {
			t.Fatal("a credential with a wrong password was promoted")
		}
		h.m.Offer(member)
		h.expectPromotion(t, 1, member)
	})
}

func wantValidationError(t *testing.T, err error, reason string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Reason != reason {
		t.Errorf("CheckSession = %v, want a *ValidationError %q", err, reason)
	}
}
