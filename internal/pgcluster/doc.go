// Package pgcluster starts and stops throwaway PostgreSQL clusters from the
// server binaries installed on the machine.
//
// It is what pgrotate's integration tests, `pgrotate demo` and the benchmark
// script use when they need a real server. A cluster lives in its own
// temporary directory (data, private unix socket directory, server log), listens
// on 127.0.0.1 only, and is tuned for speed rather than durability (fsync=off).
//
// Authentication mirrors a production setup: scram-sha-256 for every TCP
// login and for unix-socket logins of ordinary roles, and trust for the
// superuser "postgres" over the private unix socket only, which is how the
// admin helpers (Exec, QueryStrings, CreateBookstore, …) connect.
//
// initdb, pg_ctl and postgres refuse to run as root. When the process is root,
// pgcluster runs them as Options.RunAs (default "postgres") by setting
// SysProcAttr.Credential on each command, and chowns the directories it makes
// to that user. Otherwise they run as the current user.
//
// CreateBookstore, CreateExecutingRole and CreateLoginRole build the
// owner/executing-role layout of DESIGN.md §1.
package pgcluster
