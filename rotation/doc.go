// Package rotation owns the executing-role credential of each database: where
// it is read from, how a change is noticed, how a candidate is validated, and
// which credential generation is current.
//
// It knows nothing of wire frames or pools. The proxy consumes it in three
// steps that mirror DESIGN.md §3.4:
//
//   - A [Watcher] watches a source (a Kubernetes Secret directory, a JSON file
//     written by Vault agent or fetched from AWS Secrets Manager, or a libpq
//     URL file) and hands every new, complete credential to OnChange. It
//     watches directories rather than files because Kubernetes replaces the
//     `..data` symlink instead of writing the file (DESIGN.md §2 fact 7), and
//     it re-reads on a poll because events can be missed.
//   - A [Manager] receives those candidates with [Manager.Offer], validates
//     each one by logging in with it (the proxy supplies the dial as a
//     [ValidateFunc]; [CheckSession] is the post-login check), retries a
//     failing one with backoff, and promotes a good one to the next
//     [Generation]. A bad or half-written credential never replaces a working
//     one.
//   - The proxy stamps every server connection with the generation it logged
//     in with and drains the older ones after [ManagerConfig.OnPromote].
//
// When given an admin connection, rotation also runs the role lifecycle of
// DESIGN.md §3.5 itself: a [Lifecycle] sets a database up, rotates its
// executing role (a new role, the credential file rewritten atomically by
// [WriteCredential], the old role retired once pg_stat_activity shows no
// session of it) and converges after a crash at any step, with the database
// and the file as its only state; [Inspect] reports drift for `pgrotate
// check`; a [Scheduler] rotates from inside serve under an advisory lock.
//
// No password ever appears in an error or a log line: [Credential.String]
// omits it, and [SourceError] reasons are fixed texts that never quote the
// source's content.
package rotation
