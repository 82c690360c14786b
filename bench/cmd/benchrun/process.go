package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is a long-running child process (PgBouncer or pgrotate) whose
// CPU time is measured. Its output goes to logPath.
type daemon struct {
	name    string
	logPath string
	cred    *syscall.Credential
	argv    []string // binary and arguments, kept for restart
	cur     *process // the current incarnation
}

// process is one start of a daemon.
type process struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed once Wait returned
	waitErr error         // valid after exited is closed
}

// startDaemon starts bin with args, its stdout and stderr appended to
// logPath. cred, when not nil, is the OS identity to run as.
func startDaemon(name, logPath string, cred *syscall.Credential, bin string, args ...string) (*daemon, error) {
	d := &daemon{name: name, logPath: logPath, cred: cred, argv: append([]string{bin}, args...)}
	if err := d.start(); err != nil {
		return nil, err
	}
	return d, nil
}

// start execs the process in a session of its own (ownSession).
func (d *daemon) start() error {
	logFile, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s log: %w", d.name, err)
	}
	defer logFile.Close() // the child holds its own copy
	cmd := exec.Command(d.argv[0], d.argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = os.TempDir() // another OS user may not be able to enter our working directory
	cmd.SysProcAttr = ownSession(d.cred)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", d.name, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	d.cur = p
	return nil
}

// restartIfExited starts the process again when it has died, so that one
// crash fails one row rather than every row after it. It returns the
// reason it restarted, or "" when the process was running.
func (d *daemon) restartIfExited() (string, error) {
	exited := d.running()
	if exited == nil {
		return "", nil
	}
	return exited.Error(), d.start()
}

// running reports an error when the process has already exited.
func (d *daemon) running() error {
	select {
	case <-d.cur.exited:
		return fmt.Errorf("%s exited (%v); its log:\n%s", d.name, d.cur.waitErr, tailFile(d.logPath, 20))
	default:
		return nil
	}
}

// stop asks the process to shut down (SIGTERM), and kills it if it is
// still there after a few seconds. It is safe to call more than once.
func (d *daemon) stop() {
	p := d.cur
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// clockTicksPerSecond is USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat. It is 100 on every Linux architecture Go supports;
// reading sysconf(_SC_CLK_TCK) would need cgo.
const clockTicksPerSecond = 100

// procUsage is what a process has used so far.
type procUsage struct {
	cpu      time.Duration // user+sys
	switches switchCounts
}

// usage returns the process's CPU time, all threads included (the
// thread-group leader's /proc/<pid>/stat sums them), and the context
// switches of its threads (each thread's /proc/<pid>/task/<tid>/status).
func (d *daemon) usage() (procUsage, error) {
	dir := "/proc/" + strconv.Itoa(d.cur.cmd.Process.Pid)
	raw, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procUsage{}, fmt.Errorf("reading CPU time of %s: %w", d.name, err)
	}
	ticks, err := utimePlusStime(string(raw))
	if err != nil {
		return procUsage{}, fmt.Errorf("reading CPU time of %s: %w", d.name, err)
	}
	u := procUsage{cpu: time.Duration(ticks) * time.Second / clockTicksPerSecond}
	statuses, _ := filepath.Glob(dir + "/task/*/status")
	for _, path := range statuses {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue // the thread ended meanwhile
		}
		n, err := contextSwitches(string(raw))
		if err != nil {
			return procUsage{}, fmt.Errorf("reading context switches of %s: %w", d.name, err)
		}
		u.switches.voluntary += n.voluntary
		u.switches.involuntary += n.involuntary
	}
	return u, nil
}

// switchCounts are context switches: voluntary ones, where a thread
// waited (in epoll_wait, a futex, a sleep), and involuntary ones, where
// another task took the CPU from a thread that could have run on.
type switchCounts struct {
	voluntary, involuntary int64
}

func (c switchCounts) total() int64 { return c.voluntary + c.involuntary }

// contextSwitches reads the voluntary_ctxt_switches and
// nonvoluntary_ctxt_switches lines of a /proc/<pid>/task/<tid>/status.
func contextSwitches(status string) (switchCounts, error) {
	var c switchCounts
	found := 0
	for line := range strings.Lines(status) {
		name, value, _ := strings.Cut(line, ":")
		var dst *int64
		switch name {
		case "voluntary_ctxt_switches":
			dst = &c.voluntary
		case "nonvoluntary_ctxt_switches":
			dst = &c.involuntary
		default:
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return switchCounts{}, fmt.Errorf("%s: %w", name, err)
		}
		*dst = n
		found++
	}
	if found != 2 {
		return switchCounts{}, errors.New("no context switch counts in the status")
	}
	return c, nil
}

// utimePlusStime parses fields 14 and 15 of /proc/<pid>/stat (proc(5)).
// The command name (field 2) may hold spaces, so counting starts after its
// closing parenthesis, where field 3 begins.
func utimePlusStime(stat string) (int64, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	fields := strings.Fields(stat[end+1:])
	const utimeIndex = 14 - 3 // field 14, counted from field 3
	if len(fields) <= utimeIndex+1 {
		return 0, errors.New("too few fields")
	}
	utime, err1 := strconv.ParseInt(fields[utimeIndex], 10, 64)
	stime, err2 := strconv.ParseInt(fields[utimeIndex+1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return utime + stime, nil
}

// tailFile returns the last n lines of a file, for error messages.
func tailFile(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return lastLines(string(raw), n)
}

// ownSession is how benchrun starts every process it measures or drives
// (PgBouncer, pgrotate, pgbench): in a session of its own. A Ctrl-C in the
// terminal then reaches only benchrun, which stops the children in order.
// And where the kernel groups tasks by session for CPU scheduling
// (autogroup, on by default in most distributions), each process is
// scheduled as a group of its own, as a pooler in its own service or
// container is. Measured on two cores with everything in benchrun's one
// group: PgBouncer spent 50–65 instead of ~25 µs of CPU per select-only
// transaction and pgrotate ~30 % more than alone, numbers that said more
// about the scheduler than about either pooler.
func ownSession(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Credential: cred}
}
