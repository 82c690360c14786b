package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/internal/pgcluster"
)

// With two upstream hosts, a primary that goes away costs its clients one
// error each: the next connection, and every new client, lands on the
// other host, with no restart of pgrotate or the app.
func TestFailoverToTheNextHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	standby, err := pgcluster.Start(ctx, pgcluster.Options{})
	must(t, err)
	defer standby.Stop()
	primary, err := pgcluster.Start(ctx, pgcluster.Options{})
	must(t, err)
	defer primary.Stop()
	for _, c := range []*pgcluster.Cluster{primary, standby} {
		must(t, c.CreateBookstore(ctx, bookstore))
		must(t, c.CreateExecutingRole(ctx, bookstore, execRole1, execPass1))
	}
	env := startProxy(t, setup{upstreamHost: fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", primary.Port, standby.Port)})

	app := env.connect(t)
	if port := queryStrings(t, app, "SELECT inet_server_port()")[0]; port != fmt.Sprint(primary.Port) {
		t.Fatalf("connected to port %s; want the first host, %d", port, primary.Port)
	}
	must(t, primary.Stop()) // the failover

	if _, err := app.Exec(ctxT(t), "SELECT 1"); err == nil {
		t.Fatal("a query on the lost primary succeeded")
	}
	after := env.connect(t)
	if port := queryStrings(t, after, "SELECT inet_server_port(), current_user")[0]; port != fmt.Sprint(standby.Port) {
		t.Fatalf("a new client landed on port %s; want the second host, %d", port, standby.Port)
	}
	if got := queryStrings(t, after, "SELECT current_user")[0]; got != ownerRole {
		t.Fatalf("current_user on the new host = %s", got)
	}
}
