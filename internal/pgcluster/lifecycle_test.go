package pgcluster

import (
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
)

// Stop shuts the server down and removes every directory, also when the
// server was already killed behind its back; a second Stop is a no-op.
func TestStopRemovesEverything(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(*testing.T, *Cluster)
	}{
		{"running server", func(*testing.T, *Cluster) {}},
		{"server stopped with -m immediate", func(t *testing.T, c *Cluster) {
			out, err := c.user.run(testCtx(t), c.baseDir, c.bin("pg_ctl"), "stop", "-m", "immediate", "-D", c.DataDir)
			if err != nil {
				t.Fatalf("pg_ctl stop -m immediate: %v: %s", err, out)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Start(testCtx(t), Options{Logf: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			pid := c.postmasterPID()
			tc.before(t, c)
			if err := c.Stop(); err != nil {
				t.Errorf("Stop: %v", err)
			}
			if alive(pid) {
				t.Errorf("postmaster %d still running after Stop", pid)
			}
			for _, dir := range []string{c.DataDir, c.SocketDir, c.baseDir} {
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Errorf("%s still there after Stop (stat: %v)", dir, err)
				}
			}
			if err := c.Stop(); err != nil {
				t.Errorf("second Stop: %v", err)
			}
		})
	}
}

// logPath finds the server log path Start names in its error.
var logPath = regexp.MustCompile(`server log (\S+)`)

// When the server cannot start, Start's error carries the server's own
// explanation from its log, and nothing of the attempt is left on disk.
func TestStartFailureExplainsAndCleansUp(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"bad setting", Options{Settings: map[string]string{"shared_buffers": "plenty"}},
			`invalid value for parameter "shared_buffers"`},
		{"port in use", Options{Port: taken.Addr().(*net.TCPAddr).Port},
			"Address already in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Start(testCtx(t), tc.opts)
			if err == nil {
				c.Stop()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not quote the server log %q:\n%v", tc.want, err)
			}
			m := logPath.FindStringSubmatch(err.Error())
			if m == nil {
				t.Fatalf("error does not name the server log:\n%v", err)
			}
			if _, statErr := os.Stat(m[1]); !os.IsNotExist(statErr) {
				t.Errorf("%s left behind after a failed Start (stat: %v)", m[1], statErr)
			}
		})
	}
}

// Setting names are checked before they reach postgresql.conf, and values
// are quoted so any text is a single value.
func TestRenderSettings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings map[string]string
		want     string // a line of the output, or "" for an error
	}{
		{"plain", map[string]string{"work_mem": "4MB"}, "work_mem = '4MB'\n"},
		{"custom name", map[string]string{"auto_explain.log_min_duration": "0"}, "auto_explain.log_min_duration = '0'\n"},
		{"quote in value", map[string]string{"application_name": "it's"}, "application_name = 'it''s'\n"},
		{"injected line", map[string]string{"work_mem": "4MB'\nfsync = 'on"}, ""},
		{"bad name", map[string]string{"work_mem = 1\nfsync": "on"}, ""},
		{"empty name", map[string]string{"": "on"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := renderSettings(tc.settings)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("accepted %q:\n%s", tc.settings, got)
				}
				return
			}
			if err != nil || !strings.Contains(got, tc.want) {
				t.Errorf("renderSettings = %q, %v; want a line %q", got, err, tc.want)
			}
		})
	}
}
