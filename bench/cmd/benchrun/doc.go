// Command benchrun measures pgrotate side by side with a direct PostgreSQL
// connection and PgBouncer, as DESIGN.md §6 asks: one throwaway cluster,
// one PgBouncer, one pgrotate, and pgbench runs against all three,
// interleaved row by row so that noise on a shared machine hits them alike.
//
// For each pooler it reports throughput, p99 latency, failed transactions
// and the proxy's own CPU time (user+sys from /proc/<pid>/stat) divided by
// the transactions pgbench completed. It prints one markdown table and
// writes it to the results directory.
//
// It is started by bench/run.sh, which builds pgrotate and this program
// first; see bench/README.md.
package main
