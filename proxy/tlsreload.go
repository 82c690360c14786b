package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/pgrotate/pgrotate/auth"
)

// Reload timing of the client certificate, as for credential sources
// (rotation.DefaultPollInterval, rotation.DefaultDebounce).
const (
	tlsPollInterval = 10 * time.Second
	tlsDebounce     = 200 * time.Millisecond
)

// certPair is one validated certificate and key, with what each handshake
// and SCRAM exchange needs precomputed. Immutable once built.
type certPair struct {
	cert tls.Certificate
	leaf *x509.Certificate
	// binding is the tls-server-end-point data of leaf; nil when its
	// signature algorithm has no hash of its own (Ed25519), in which case
	// SCRAM-SHA-256-PLUS is not offered.
	binding []byte
}

// readPair reads the certificate and key files. It validates nothing.
func readPair(certFile, keyFile string) (certPEM, keyPEM []byte, err error) {
	if certPEM, err = os.ReadFile(certFile); err != nil {
		return nil, nil, fmt.Errorf("reading certificate: %w", err)
	}
	if keyPEM, err = os.ReadFile(keyFile); err != nil {
		return nil, nil, fmt.Errorf("reading key: %w", err)
	}
	return certPEM, keyPEM, nil
}

// pairHash identifies a pair's content, so that what did not change is not
// validated (and logged) again on every poll.
func pairHash(certPEM, keyPEM []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(certPEM)
	h.Write([]byte{0})
	h.Write(keyPEM)
	return [sha256.Size]byte(h.Sum(nil))
}

// parsePair validates a PEM certificate chain and its key. The error names
// the problem, never key material (crypto/tls's messages don't quote it).
func parsePair(certPEM, keyPEM []byte) (*certPair, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("validating certificate and key: %w", err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
	}
	binding, _ := auth.TLSServerEndPoint(leaf)
	return &certPair{cert: cert, leaf: leaf, binding: binding}, nil
}

// logAttrs describe p for the log: what an operator checks after a renewal.
func (p *certPair) logAttrs(certFile string) []any {
	return []any{
		"cert_file", certFile,
		"subject", p.leaf.Subject.String(),
		"serial", p.leaf.SerialNumber.String(),
		"not_after", p.leaf.NotAfter.UTC().Format(time.RFC3339),
		"channel_binding", p.binding != nil,
	}
}

// reloadState is the reloader's memory between checks.
type reloadState struct {
	lastTried [sha256.Size]byte // content hash of the last pair validated
	lastErr   string            // the last read error, logged once
	armErr    string            // the last error arming a watch, logged once
	poll      time.Duration
	debounce  time.Duration
	reread    chan struct{}
}

func newReloadState() reloadState {
	return reloadState{poll: tlsPollInterval, debounce: tlsDebounce, reread: make(chan struct{}, 1)}
}

// Reload re-reads the certificate pair now, as on SIGHUP. It never blocks.
func (c *ClientTLS) Reload() {
	if !c.enabled() {
		return
	}
	select {
	case c.reload.reread <- struct{}{}:
	default:
	}
}

// Run watches the certificate and key files until ctx is done, and swaps in
// each new pair that validates. A pair that does not — half-written,
// mismatched key, not PEM — is logged and the last good one stays in use:
// connections already open keep their session either way. It watches the
// parent directories with fsnotify (a watch on a file dies when a new file is
// renamed over it, and Kubernetes swaps a `..data` symlink) and polls as a
// fallback. Run returns nil at once when TLS is off.
func (c *ClientTLS) Run(ctx context.Context) error {
	if !c.enabled() {
		return nil
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		c.log.Warn("cannot watch client TLS files; relying on the poll", "err", err)
	} else {
		defer fsw.Close()
	}
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	if fsw != nil {
		events, watchErrs = fsw.Events, fsw.Errors
	}
	c.arm(fsw)
	poll := time.NewTicker(c.reload.poll)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil // fsnotify gave up: the poll carries on
			} else if ev.Op != fsnotify.Chmod {
				debounce.Reset(c.reload.debounce)
			}
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
			} else {
				c.log.Warn("client TLS watch error; re-arming", "err", err)
			}
		case <-debounce.C:
			c.check(fsw)
		case <-poll.C:
			c.check(fsw)
		case <-c.reload.reread:
			c.check(fsw)
		}
	}
}

// check re-arms the watches and reloads the pair if the files' content
// changed since the last attempt. One log line per attempt: what is now
// served, or why the previous pair stays.
func (c *ClientTLS) check(fsw *fsnotify.Watcher) {
	c.arm(fsw)
	certPEM, keyPEM, err := readPair(c.certFile, c.keyFile)
	if err != nil {
		// A rename in flight, a removed mount: log each distinct reason once.
		if err.Error() != c.reload.lastErr {
			c.reload.lastErr = err.Error()
			c.logKept(err)
		}
		return
	}
	c.reload.lastErr = ""
	hash := pairHash(certPEM, keyPEM)
	if hash == c.reload.lastTried {
		return
	}
	c.reload.lastTried = hash
	p, err := parsePair(certPEM, keyPEM)
	if err != nil {
		c.logKept(err)
		return
	}
	c.pair.Store(p)
	c.log.Info("client TLS certificate reloaded", p.logAttrs(c.certFile)...)
}

// logKept says why a reload did not happen.
func (c *ClientTLS) logKept(err error) {
	c.log.Warn("client TLS certificate not reloaded; keeping the previous one",
		"cert_file", c.certFile, "key_file", c.keyFile, "err", err)
}

// arm watches the directories holding the certificate and key. It runs before
// every check because a directory may have been removed and re-created (its
// watch died with it); fsnotify's Add is idempotent.
func (c *ClientTLS) arm(fsw *fsnotify.Watcher) {
	if fsw == nil {
		return
	}
	dirs := []string{filepath.Dir(c.certFile)}
	if d := filepath.Dir(c.keyFile); !slices.Contains(dirs, d) {
		dirs = append(dirs, d)
	}
	var errs []error
	for _, d := range dirs {
		if err := fsw.Add(d); err != nil {
			errs = append(errs, fmt.Errorf("watching %s: %w", d, err))
		}
	}
	if err := errors.Join(errs...); err == nil {
		c.reload.armErr = ""
	} else if err.Error() != c.reload.armErr {
		c.reload.armErr = err.Error()
		c.log.Warn("cannot watch client TLS files; relying on the poll", "err", err)
	}
}
