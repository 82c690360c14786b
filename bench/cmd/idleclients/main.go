// Command idleclients measures what idle client connections cost pgrotate:
// it opens -n connections to a running pgrotate (each logs in and runs one
// query, as an application's pool does when it starts), holds them idle, and
// reports the pgrotate process's resident memory before and after.
//
//	go run ./bench/cmd/idleclients -pid $(pgrep -f 'pgrotate serve') \
//	    -url 'postgres://app:secret@127.0.0.1:6432/bookstore_tx' -n 10000
//
// Raise the open-file limit first (ulimit -n 20000): each connection is a
// descriptor in this process and one in pgrotate.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func main() {
	pid := flag.Int("pid", 0, "pgrotate's process id")
	url := flag.String("url", "", "connection URL of a pgrotate database")
	n := flag.Int("n", 10000, "idle connections to hold")
	parallel := flag.Int("parallel", 32, "connections opened at once")
	hold := flag.Duration("hold", 0, "keep the connections this long after measuring (to look at pgrotate's /metrics meanwhile)")
	flag.Parse()
	if *pid == 0 || *url == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*pid, *url, *n, *parallel, *hold); err != nil {
		fmt.Fprintln(os.Stderr, "idleclients:", err)
		os.Exit(1)
	}
}

func run(pid int, url string, n, parallel int, hold time.Duration) error {
	before, err := rssKiB(pid)
	if err != nil {
		return err
	}
	conns := make([]*pgconn.PgConn, n)
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				c, err := open(url)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	opened := time.Since(start)
	time.Sleep(2 * time.Second) // let pgrotate settle (GC, buffers)
	after, err := rssKiB(pid)
	if err != nil {
		return err
	}
	held := n - int(failed.Load())
	fmt.Printf("idle clients held: %d of %d (opened in %s)\n", held, n, opened.Round(time.Millisecond))
	if e := firstErr.Load(); e != nil {
		fmt.Printf("first failure: %v\n", e)
	}
	fmt.Printf("pgrotate RSS: %.1f MiB before, %.1f MiB with the clients idle (%.1f KiB per client)\n",
		float64(before)/1024, float64(after)/1024, float64(after-before)/float64(max(held, 1)))
	time.Sleep(hold)
	for _, c := range conns {
		if c != nil {
			_ = c.Close(context.Background())
		}
	}
	runtime.KeepAlive(conns)
	return nil
}

func open(url string) (*pgconn.PgConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		_ = c.Close(ctx)
		return nil, err
	}
	return c, nil
}

// rssKiB reads VmRSS of a process from /proc.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int64
			_, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kib)
			return kib, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
