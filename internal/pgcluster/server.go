package pgcluster

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultWait bounds waits whose context has no deadline.
const defaultWait = 60 * time.Second

// pgCtl runs "pg_ctl start" or "pg_ctl restart" and waits until the server
// accepts connections. On failure the error carries the end of the server
// log, which is where PostgreSQL explains why it did not come up.
func (c *Cluster) pgCtl(ctx context.Context, action string, extra ...string) error {
	args := append([]string{action, "-w", "-t", strconv.Itoa(waitSeconds(ctx)),
		"-D", c.DataDir, "-l", c.LogFile}, extra...)
	out, err := c.user.run(ctx, c.baseDir, c.bin("pg_ctl"), args...)
	if err == nil {
		err = c.waitReady(ctx)
	}
	if err != nil {
		return fmt.Errorf("running pg_ctl %s on %s:%d: %w%s%s", action, c.Host, c.Port, err,
			section("pg_ctl output", lastLines(out, 10)), section("server log "+c.LogFile, c.logTail()))
	}
	return nil
}

// waitReady pings over the admin socket until the server answers, and
// records its major version. pg_ctl -w has normally waited already; this is
// the proof that a client can really get in.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	for {
		v, err := c.serverVersionNum(ctx)
		if err == nil {
			c.Version = v / 10000
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the server to accept connections: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) serverVersionNum(ctx context.Context) (int, error) {
	conn, err := pgx.Connect(ctx, c.AdminURL("postgres"))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v int
	err = conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v)
	return v, err
}

// stopServer makes sure no server process of this cluster is left. A server
// that is already gone (never started, crashed, stopped externally) is not
// an error.
func (c *Cluster) stopServer() error {
	pid := c.postmasterPID()
	if pid == 0 || !alive(pid) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultWait)
	defer cancel()
	for _, mode := range []string{"fast", "immediate"} {
		out, err := c.user.run(ctx, c.baseDir, c.bin("pg_ctl"), "stop", "-w", "-t", "30", "-m", mode, "-D", c.DataDir)
		// pg_ctl -w returns once postmaster.pid is gone, a moment before
		// the process itself exits.
		if waitGone(pid, 5*time.Second) {
			return nil
		}
		c.opts.logf("pgcluster: pg_ctl stop -m %s left pid %d running: %v: %s", mode, pid, err, lastLines(out, 3))
	}
	// pg_ctl starts the postmaster in its own session, so its process group
	// holds every backend too.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if waitGone(pid, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("stopping postgres (pid %d): still running after SIGKILL", pid)
}

// waitGone polls until pid has exited or d has passed, and reports whether
// it exited.
func waitGone(pid int, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if !alive(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// postmasterPID reads the first line of postmaster.pid, or returns 0 when
// there is no such file (the server removes it on every orderly exit,
// immediate shutdown included).
func (c *Cluster) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(c.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// alive reports whether pid is a running process. A zombie (exited, not yet
// reaped by init, which adopted the postmaster when pg_ctl exited) counts as
// gone. EPERM means the pid exists but is someone else's: after a crash, a
// reused pid, not our server.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		// Gone between the two calls; any other error: trust kill(0).
		return !os.IsNotExist(err)
	}
	// The state follows the parenthesised command name, which may itself
	// contain ") ".
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// waitSeconds turns ctx's deadline into pg_ctl's -t seconds, so pg_ctl gives
// up by itself (and we can clean up) rather than being killed mid-start.
func waitSeconds(ctx context.Context) int {
	d, ok := ctx.Deadline()
	if !ok {
		return int(defaultWait.Seconds())
	}
	return max(1, int(math.Ceil(time.Until(d).Seconds())))
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, defaultWait)
}
