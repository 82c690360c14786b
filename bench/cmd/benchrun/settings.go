package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// settings is the parsed command line: what to run and where things are.
type settings struct {
	pgrotateBin  string        // the pgrotate binary to benchmark
	resultsDir   string        // where <timestamp>.md is written
	revision     string        // git revision of pgrotate, for the report
	workloads    []string      // "select-only", "tpcb", "connect"
	protocols    []string      // pgbench -M values
	modes        []string      // "session", "transaction"
	clients      []int         // pgbench -c values
	duration     time.Duration // pgbench -T
	jobs         int           // pgbench -j
	scale        int           // pgbench -i -s
	txPoolSize   int           // server connections of the transaction-mode pools
	samplingRate float64       // pgbench --sampling-rate for the latency log
	repeat       int           // runs per target and row; the row shows their median
	rotation     bool          // also measure a rotation under load in each pool mode
}

var (
	knownWorkloads = []string{"select-only", "tpcb", "connect"}
	// defaultWorkloads leaves connect out: it measures logins, which the
	// other rows already include once per client, and it would make the
	// full matrix half as long again.
	defaultWorkloads = []string{"select-only", "tpcb"}
	knownProtocols   = []string{"simple", "extended", "prepared"}
	knownModes       = []string{"session", "transaction"}
)

// parseSettings reads the flags. -quick replaces the duration and client
// list with a smoke-run preset, whatever else was given.
func parseSettings(args []string, stderr io.Writer) (settings, error) {
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s settings
	var workloads, protocols, modes, clients string
	fs.StringVar(&s.pgrotateBin, "pgrotate", "", "pgrotate binary to benchmark (run.sh builds it)")
	fs.StringVar(&s.revision, "revision", "(unknown revision)", "git revision of pgrotate, shown in the report")
	fs.StringVar(&s.resultsDir, "results", "bench/results", "directory for the <timestamp>.md result file")
	fs.StringVar(&workloads, "workloads", strings.Join(defaultWorkloads, ","), "pgbench workloads: select-only (-S), tpcb (built-in TPC-B-like), connect (-S -C: a new connection, with its login, for every transaction; not run unless named)")
	fs.StringVar(&protocols, "protocols", strings.Join(knownProtocols, ","), "pgbench -M query modes")
	fs.StringVar(&modes, "modes", strings.Join(knownModes, ","), "pool modes")
	fs.StringVar(&clients, "clients", "16,64,256", "pgbench -c values")
	s.duration = 10 * time.Second
	fs.Func("T", "duration of each pgbench run: seconds, like pgbench's -T, or a Go duration such as 10s (default 10)", func(v string) error {
		d, err := parseSeconds(v)
		s.duration = d
		return err
	})
	fs.IntVar(&s.jobs, "j", 2, "pgbench -j threads")
	fs.IntVar(&s.scale, "scale", 10, "pgbench -i scale factor")
	fs.IntVar(&s.txPoolSize, "pool", 20, "server connections of each transaction-mode pool")
	fs.Float64Var(&s.samplingRate, "sampling-rate", 0.1, "fraction of transactions logged for the p99 latency")
	fs.IntVar(&s.repeat, "repeat", 1, "runs per target and row, the poolers swapping order each time; the table shows medians")
	fs.BoolVar(&s.rotation, "rotation", true, "after the matrix, rotate the credential under load once per pool mode and report the throughput dip")
	quick := fs.Bool("quick", false, "smoke run: -T 3s and 16 clients only")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if *quick {
		s.duration, clients = 3*time.Second, "16"
	}
	var err error
	s.workloads, err = oneOfList("workloads", workloads, knownWorkloads)
	if err != nil {
		return s, err
	}
	s.protocols, err = oneOfList("protocols", protocols, knownProtocols)
	if err != nil {
		return s, err
	}
	s.modes, err = oneOfList("modes", modes, knownModes)
	if err != nil {
		return s, err
	}
	if s.clients, err = intList("clients", clients); err != nil {
		return s, err
	}
	return s, s.validate()
}

// validate checks what the flag package cannot.
func (s settings) validate() error {
	switch {
	case s.pgrotateBin == "":
		return errors.New("checking flags: -pgrotate is required (bench/run.sh builds and passes it)")
	case s.duration < time.Second:
		return errors.New("checking flags: -T must be at least 1s")
	case s.jobs < 1 || s.scale < 1 || s.txPoolSize < 1 || s.repeat < 1:
		return errors.New("checking flags: -j, -scale, -pool and -repeat must be at least 1")
	case s.samplingRate <= 0 || s.samplingRate > 1:
		return errors.New("checking flags: -sampling-rate must be in (0, 1]")
	}
	return nil
}

// maxClients is the largest pgbench -c of the run; session-mode pools are
// sized to it.
func (s settings) maxClients() int { return slices.Max(s.clients) }

// oneOfList splits a comma-separated flag and checks every item is known.
func oneOfList(name, value string, known []string) ([]string, error) {
	var out []string
	for _, item := range strings.Split(value, ",") {
		item = strings.TrimSpace(item)
		if !slices.Contains(known, item) {
			return nil, fmt.Errorf("checking flag -%s: %q is not one of %s", name, item, strings.Join(known, ", "))
		}
		out = append(out, item)
	}
	return out, nil
}

// intList splits a comma-separated flag of positive integers.
func intList(name, value string) ([]int, error) {
	var out []int
	for _, item := range strings.Split(value, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(item))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("checking flag -%s: %q is not a positive integer", name, item)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseSeconds reads "10" (pgbench's whole seconds) or a Go duration such
// as "10s" or "1m".
func parseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}
