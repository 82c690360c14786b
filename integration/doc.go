// Package integration holds pgrotate's end-to-end tests: a throwaway
// PostgreSQL cluster (internal/pgcluster), pgrotate in front of it, and the
// clients users run — pgx, psql, pgbench. Nothing here mocks PostgreSQL.
package integration
