// Package demo is `pgrotate demo`: it shows pgrotate rotating credentials
// under load on a machine that has nothing but this repository and the
// PostgreSQL server binaries.
//
// Run starts a throwaway cluster (internal/pgcluster) with the owner and
// executing-role layout of DESIGN.md §1, a credential directory laid out
// exactly like a Kubernetes Secret volume, and pgrotate itself
// (internal/daemon) in front of it. It then runs an application-like
// workload through pgrotate with pgx — order transactions from several
// workers plus a "migration" worker issuing DDL — while it rotates the
// executing role on a schedule the way kubelet publishes a new Secret
// version. After each rotation it waits until pgrotate reports the old
// generation drained and drops the old role.
//
// What the demo proves is in its Summary: transactions committed with zero
// failures, every object in the database owned by the owner role (so an old
// role can be dropped without REASSIGN OWNED), and exactly one executing
// role left. The demo leaves nothing behind: the cluster is stopped and
// every temporary directory removed, also on errors and on Ctrl-C.
package demo
