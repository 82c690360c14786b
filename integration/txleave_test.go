package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Clients that pipeline whole transactions and leave before reading the
// replies (a web worker killed mid-request) never cost the pool a
// connection. When the server's last ReadyForQuery of a transaction could
// not be written to such a client, the connection used to stay taken for
// good: the pool counted it busy, every later client waited, and shutdown
// never finished. The race is between the client's leaving and the
// server's reply, so the test makes it many times: 8 clients on a pool of
// 2 for 3 seconds, a third of them leaving with an RST at a random point.
func TestTransactionModeClientsLeavingMidReplyGiveConnectionsBack(t *testing.T) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) {
			env := startProxy(t, setup{poolMode: "transaction", poolSize: 2, queryWait: "60s", goroutineRelay: r.goroutine})
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			stop := time.Now().Add(3 * time.Second)
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
					for time.Now().Before(stop) {
						if err := pipelineAndMaybeLeave(env.appURL(), rng); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("a client that stayed: %v", err)
			}
			waitBusy(t, env, 0)
			if logs := env.logs.String(); strings.Contains(logs, "client session failed") {
				t.Errorf("clients that left are logged as failures:\n%s", tail(logs, 20))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := env.connect(t).Exec(ctx, "SELECT 1"); err != nil {
				t.Fatalf("a new client after the others left: %v", err)
			}
		})
	}
}

// pipelineAndMaybeLeave logs in, sends two transactions as separate Query
// messages in one write, and either reads every reply or, one time in
// three, reads a few messages and resets the connection.
func pipelineAndMaybeLeave(url string, rng *rand.Rand) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, url)
	if err != nil {
		return err
	}
	hj, err := pc.Hijack()
	if err != nil {
		return err
	}
	conn := hj.Conn
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var buf []byte
	for range 2 {
		for _, q := range []string{"BEGIN", fmt.Sprintf("SELECT repeat('y', %d)", []int{10, 9000, 70000}[rng.IntN(3)]), "COMMIT"} {
			buf, _ = (&pgproto3.Query{String: q}).Encode(buf)
		}
	}
	if _, err := conn.Write(buf); err != nil {
		return err
	}
	// Replies are read through pgconn's own reader: a write pgconn found
	// slow while logging in (the race detector, a busy CI machine) starts a
	// background read of the socket that outlives Hijack, and the bytes it
	// takes are only in that reader. A Frontend of its own on conn missed
	// them: the middle of the client's own DataRow came first, or nothing.
	fe := hj.Frontend
	leave, readyAt := rng.IntN(3) == 0, rng.IntN(4)
	for ready := 0; ready < 6; {
		if leave && ready >= readyAt {
			_ = conn.(*net.TCPConn).SetLinger(0) // unread replies: an RST, as a killed process's
			return nil
		}
		msg, err := fe.Receive()
		if err != nil {
			return fmt.Errorf("reply %d of 6: %w", ready+1, err)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			ready++
		}
	}
	return nil
}

// waitBusy waits up to 5 s for pgrotate to count n busy server connections.
func waitBusy(t *testing.T, env *proxyEnv, n float64) {
	t.Helper()
	waitMetric(t, env, "pgrotate_server_connections", map[string]string{"database": dbName, "state": "busy"}, n, "server connections busy with every client gone")
}
