// Package daemon assembles a running pgrotate from a validated config: one
// credential watcher and rotation manager per database, the proxy, and the
// admin HTTP endpoints. `pgrotate serve`, `pgrotate demo` and the integration
// tests all run pgrotate through it, so they exercise the same wiring.
package daemon
