package integration

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// unusedPort returns a TCP port nothing listens on.
func unusedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// connectAs logs in to pgrotate as user with password.
func connectAs(env *proxyEnv, user, password string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, env.url(user, password, dbName))
}

func closeIf(c *pgx.Conn) {
	if c != nil {
		c.Close(context.Background())
	}
}
