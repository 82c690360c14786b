package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"

	"github.com/pgrotate/pgrotate/configs"
)

// Client TLS modes, as in configs.TLS.Mode.
const (
	tlsDisable = "disable"
	tlsPrefer  = "prefer"
	tlsRequire = "require"
)

// Startup packet codes that ask for encryption (PostgreSQL's pqcomm.h).
const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
)

// tlsHandshakeRecord is the first byte of a TLS handshake record. A client
// using PostgreSQL 17's sslnegotiation=direct opens with its ClientHello
// instead of an SSLRequest; no startup packet can start with it, as its length
// would exceed the 10000-byte cap by far.
const tlsHandshakeRecord = 0x16

// alpnPostgreSQL is the ALPN protocol PostgreSQL 17 registered and requires
// for direct TLS. It is offered on negotiated TLS too, where a client that
// sends ALPN must name it (as PostgreSQL 17 does).
const alpnPostgreSQL = "postgresql"

// ClientTLS is pgrotate's TLS towards clients: the mode and the certificate
// pair, which Run reloads from disk when the files change. A nil *ClientTLS
// means TLS is off.
type ClientTLS struct {
	mode              string
	certFile, keyFile string
	log               *slog.Logger
	// pair is the certificate served to new handshakes; swapped whole by
	// reloads, so a handshake sees one consistent pair.
	pair atomic.Pointer[certPair]
	// reloader state, owned by the goroutine running Run (NewClientTLS
	// before it).
	reload reloadState
}

// NewClientTLS loads cfg's certificate pair once, so that start-up fails on
// an unusable pair rather than on the first client. With mode "disable" it
// loads nothing and Run returns at once.
func NewClientTLS(cfg configs.TLS, log *slog.Logger) (*ClientTLS, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &ClientTLS{mode: cfg.Mode, log: log, reload: newReloadState()}
	if cfg.Mode == "" || cfg.Mode == tlsDisable {
		c.mode = tlsDisable
		return c, nil
	}
	var err error
	if c.certFile, err = filepath.Abs(cfg.CertFile); err != nil {
		return nil, fmt.Errorf("loading client TLS certificate: %w", err)
	}
	if c.keyFile, err = filepath.Abs(cfg.KeyFile); err != nil {
		return nil, fmt.Errorf("loading client TLS key: %w", err)
	}
	certPEM, keyPEM, err := readPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading client TLS certificate: %w", err)
	}
	p, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading client TLS certificate: %w", err)
	}
	c.reload.lastTried = pairHash(certPEM, keyPEM)
	c.pair.Store(p)
	c.log.Info("client TLS certificate loaded", p.logAttrs(c.certFile)...)
	return c, nil
}

// enabled reports whether clients may get TLS.
func (c *ClientTLS) enabled() bool { return c != nil && c.mode != tlsDisable }

// required reports whether plaintext clients are refused.
func (c *ClientTLS) required() bool { return c != nil && c.mode == tlsRequire }

// connConfig is the TLS configuration of one client connection. Its
// GetCertificate records the pair it served in *served, because
// tls.ConnectionState does not say which certificate the server sent, and
// SCRAM-SHA-256-PLUS must bind to exactly that one (RFC 5929 §4.1).
//
// Session tickets are off: a resumed session skips GetCertificate, so the
// served certificate would be unknown (PostgreSQL sets SSL_OP_NO_TICKET too).
func (c *ClientTLS) connConfig(served **certPair) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		NextProtos:             []string{alpnPostgreSQL},
		SessionTicketsDisabled: true,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			p := c.pair.Load()
			*served = p
			return &p.cert, nil
		},
	}
}

// negotiate answers what a client may send before its StartupMessage — an
// SSLRequest, a GSSENCRequest, or (direct TLS) a ClientHello — and upgrades
// the session to TLS when asked and configured. It returns the first bytes
// of the real startup packet that it read (none after TLS, which starts
// afresh).
//
// It reads these 8-byte requests itself, exactly 8 bytes at a time, straight
// from the socket, rather than through pgproto3, whose reader buffers ahead.
// So nothing a client (or a man in the middle) sends after an SSLRequest can
// sit in a plaintext buffer and later be taken as if it had arrived over TLS
// (CVE-2021-23222, PostgreSQL's "received unencrypted data after SSL
// request"): such bytes stay in the socket, become the start of the TLS
// handshake, and fail it.
func (s *session) negotiate() ([]byte, error) {
	hdr := make([]byte, 8)
	sslDone, gssDone := false, false
	for {
		if err := readHead(s.conn, hdr); err != nil {
			return nil, err
		}
		// A ClientHello (direct TLS) is longer than 8 bytes, so reading 8
		// takes nothing that is not the handshake's, and it costs one
		// system call per login less than reading its first byte alone.
		if hdr[0] == tlsHandshakeRecord && !sslDone && !gssDone && s.srv.tls.enabled() {
			return nil, s.startTLS(&replayConn{Conn: s.conn, r: io.MultiReader(bytes.NewReader(hdr), s.conn)}, true)
		}
		length, code := binary.BigEndian.Uint32(hdr), binary.BigEndian.Uint32(hdr[4:])
		switch {
		case length == 8 && code == sslRequestCode && !sslDone && s.srv.tls.enabled():
			if err := s.answer('S'); err != nil {
				return nil, err
			}
			return nil, s.startTLS(s.conn, false)
		case length == 8 && code == sslRequestCode && !sslDone:
			sslDone = true
			if err := s.answer('N'); err != nil {
				return nil, err
			}
		case length == 8 && code == gssEncRequestCode && !gssDone:
			// libpq with gssencmode=prefer asks for GSS first, then SSL on
			// the same connection.
			gssDone = true
			if err := s.answer('N'); err != nil {
				return nil, err
			}
		default:
			// The start of the real startup packet: readStartup reads the
			// rest straight from the socket, and s.be what follows it.
			s.be = newStartupBackend(s.conn, s.conn)
			return hdr, nil
		}
	}
}

// readHead reads the first 8 bytes of a startup packet into hdr, or of a
// TLS ClientHello. A length out of bounds is refused once its 4 bytes are
// in, as PostgreSQL refuses it, rather than when auth_timeout ends the
// wait for 8.
func readHead(c net.Conn, hdr []byte) error {
	n, err := io.ReadAtLeast(c, hdr, 4)
	if err == nil && hdr[0] != tlsHandshakeRecord && !startupLengthOK(int(int32(binary.BigEndian.Uint32(hdr)))) {
		return errStartupLength
	}
	if err == nil && n < len(hdr) {
		_, err = io.ReadFull(c, hdr[n:])
	}
	if err != nil {
		return &disconnect{fmt.Errorf("reading startup packet: %w", err)}
	}
	return nil
}

// answer sends the one-byte reply to an encryption request.
func (s *session) answer(b byte) error {
	if _, err := s.conn.Write([]byte{b}); err != nil {
		return &disconnect{fmt.Errorf("answering encryption request: %w", err)}
	}
	return nil
}

// startTLS runs the server side of the TLS handshake on raw and moves the
// session onto the TLS connection: s.conn, s.be and s.clientRd all read and
// write through it from now on. direct is PostgreSQL 17's direct TLS, which
// requires ALPN "postgresql". The handshake is bounded by the deadline serve
// set for the whole startup.
func (s *session) startTLS(raw net.Conn, direct bool) error {
	var served *certPair
	tc := tls.Server(raw, s.srv.tls.connConfig(&served))
	if err := tc.Handshake(); err != nil {
		s.log.Info("client TLS handshake failed", "direct", direct, "err", err)
		return &disconnect{fmt.Errorf("TLS handshake: %w", err)}
	}
	s.conn, s.be, s.clientRd = tc, newStartupBackend(tc, tc), newClientReader(tc)
	s.channelBinding = served.binding
	if direct && tc.ConnectionState().NegotiatedProtocol != alpnPostgreSQL {
		return fatal(codeProtocolViolation, "received direct SSL connection request without ALPN protocol negotiation extension")
	}
	return nil
}

// isTLS reports whether the client connection is encrypted.
func (s *session) isTLS() bool {
	_, ok := s.conn.(*tls.Conn)
	return ok
}

// replayConn is a net.Conn whose reads first return bytes already taken from
// it (the first byte of a direct-TLS ClientHello).
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }
