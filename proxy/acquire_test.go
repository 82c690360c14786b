package proxy

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// A waiting client's login is tried again only when it may succeed later:
// not for a refused credential, a missing database or privilege, or no
// credential at all.
func TestPassingLoginFailure(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("connecting: %w", &pgconn.PgError{Code: code}) }
	cases := []struct {
		err  error
		want bool
	}{
		{pg("28P01"), false}, // password authentication failed
		{pg("28000"), false}, // no pg_hba.conf entry
		{pg("3D000"), false}, // database does not exist
		{pg("42501"), false}, // permission denied to set role
		{errNoCredential, false},
		{pg("57P03"), true}, // the database system is starting up
		{pg("53300"), true}, // too many clients already
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{errors.New("timeout: context deadline exceeded"), true},
	}
	for _, c := range cases {
		if got := passingLoginFailure(c.err); got != c.want {
			t.Errorf("passingLoginFailure(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// While the server is down, every waiting client tries a login about once
// a second: the first failure is logged, then one line per failLogEvery
// that counts the others; a login that succeeds starts over.
func TestFailLogThinsAnOutage(t *testing.T) {
	var f failLog
	t0 := time.Now()
	var got []int
	for _, s := range []int{0, 1, 1, 5, 11, 12, 20} {
		got = append(got, f.add(t0.Add(time.Duration(s)*time.Second)))
	}
	if want := []int{1, 0, 0, 0, 4, 0, 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("failures reported %v, want %v", got, want)
	}
	f.reset()
	if n := f.add(t0.Add(21 * time.Second)); n != 1 {
		t.Fatalf("first failure after a success reported %d, want 1", n)
	}
}
