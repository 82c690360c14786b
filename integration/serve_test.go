package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgrotate/pgrotate/internal/daemon"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// pgrotateBinary builds cmd/pgrotate once per test run, as a user would.
func pgrotateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pgrotate-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "pgrotate")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/pgrotate").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// The README's path: `pgrotate passwd` makes the client verifier, `pgrotate
// serve -config` runs the proxy, psql connects with the stable password,
// /readyz and /status report, SIGHUP re-reads, SIGTERM exits 0 and SIGINT 130.
func TestServeBinary(t *testing.T) {
	bin := pgrotateBinary(t)
	passwd := exec.Command(bin, "passwd")
	passwd.Stdin = strings.NewReader(appPass + "\n")
	verifier, err := passwd.Output()
	if err != nil || !strings.HasPrefix(string(verifier), "SCRAM-SHA-256$4096:") {
		t.Fatalf("pgrotate passwd = %q, %v", verifier, err)
	}

	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGTERM, 0}, {syscall.SIGINT, 130}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			writeSecretVolume(t, filepath.Join(dir, "secret"), execRole1, execPass1)
			listen, admin := unusedPort(t), unusedPort(t)
			cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
unix_socket_dir: %s
admin_listen: 127.0.0.1:%d
upstream: {host: 127.0.0.1, port: %d, sslmode: disable}
databases:
  %s: {owner_role: %s, credentials: {path: %s}}
clients:
  - {user: %s, password_verifier: "%s"}
`, listen, dir, admin, cluster.Port, dbName, ownerRole, filepath.Join(dir, "secret"), appUser, strings.TrimSpace(string(verifier)))
			must(t, os.WriteFile(filepath.Join(dir, "pgrotate.yaml"), []byte(cfg), 0o600))

			var logs syncBuffer
			cmd := exec.Command(bin, "serve", "-config", filepath.Join(dir, "pgrotate.yaml"))
			cmd.Stdout, cmd.Stderr = &logs, &logs
			must(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			adminURL := fmt.Sprintf("http://127.0.0.1:%d", admin)
			waitHTTP(t, adminURL+"/readyz", &logs)

			psql := exec.Command(lookPath(t, "psql"), "-X", "-A", "-t", "-c", "SELECT current_user || ' ' || session_user",
				fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", appUser, appPass, listen, dbName))
			out, err := psql.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != ownerRole+" "+execRole1 {
				t.Fatalf("psql through pgrotate serve: %q, %v\nlog:\n%s", out, err, logs.String())
			}

			// The same through the Unix socket, as a sidecar's tools connect.
			psql = exec.Command(lookPath(t, "psql"), "-X", "-A", "-t", "-h", dir, "-p", fmt.Sprint(listen),
				"-U", appUser, "-d", dbName, "-c", "SELECT current_user")
			psql.Env = append(os.Environ(), "PGPASSWORD="+appPass)
			if out, err := psql.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != ownerRole {
				t.Fatalf("psql over the Unix socket: %q, %v", out, err)
			}

			var st daemon.Status
			getJSON(t, adminURL+"/status", &st)
			if !st.Ready || st.Databases[0].CurrentRole != execRole1 || st.Databases[0].Generation != 1 {
				t.Fatalf("/status = %+v", st)
			}

			must(t, cmd.Process.Signal(syscall.SIGHUP))
			waitFor(t, func() bool { return strings.Contains(logs.String(), "SIGHUP") }, "a log line about SIGHUP")

			must(t, cmd.Process.Signal(tc.sig))
			err = cmd.Wait()
			var exit *exec.ExitError
			code := 0
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			}
			if code != tc.code {
				t.Fatalf("exit code after %v = %d (%v), want %d\nlog:\n%s", tc.sig, code, err, tc.code, logs.String())
			}
			assertNoSecrets(t, logs.String())
		})
	}
}

func waitHTTP(t *testing.T, url string, logs *syncBuffer) {
	t.Helper()
	waitFor(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, url+" to answer 200; log:\n"+logs.String())
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v\n%s", url, err, body)
	}
}

// waitFor polls cond; the deadline is only a guard against hanging.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
