package auth

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// FuzzParseSecret: any string either parses into a secret that formats back
// to exactly that string and prints redacted, or is rejected with one of
// ParseSecret's fixed errors, which cannot quote it.
func FuzzParseSecret(f *testing.F) {
	for _, v := range pgVectors {
		f.Add(v.secret)
	}
	f.Add(pgMD5Vector)
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSecret(in)
		if err != nil {
			// Fixed error texts cannot quote the input.
			if !slices.Contains(parseErrors, err) {
				t.Fatalf("error %q is not one of ParseSecret's fixed errors", err)
			}
			return
		}
		if s.format() != in {
			t.Fatalf("parsed %q but it formats as %q", in, s.format())
		}
		if strings.Contains(s.String(), in) {
			t.Fatalf("String() shows the secret")
		}
	})
}

var parseErrors = []error{errUnknownFormat, errSCRAMLayout, errSCRAMIterations, errSCRAMBase64, errSCRAMSalt, errSCRAMKeyLen, errMD5Format}

// FuzzSCRAMClientMessages feeds arbitrary SASLInitialResponse and
// SASLResponse payloads to Authenticate over a pipe: it must end every
// exchange with a classified error (no random proof is right), never panic
// and never hang.
func FuzzSCRAMClientMessages(f *testing.F) {
	f.Add(mechSCRAM, []byte("n,,n=,r=rOprNGfwEbeRWgbNEkqO"), []byte("c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="), false, true)
	f.Add(mechSCRAMPlus, []byte("p=tls-server-end-point,,n=,r=abc"), []byte("c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=abc,p=AAAA"), true, true)
	f.Add(mechSCRAM, []byte("y,a=x,n=u=2C,r=1"), []byte(""), true, false)
	secrets := []Secret{mustParse(f, pgVectors[0].secret), mustParse(f, pgVectors[1].secret)}
	f.Fuzz(func(t *testing.T, mech string, first, final []byte, tls, knownUser bool) {
		opts := Options{}
		if tls {
			opts.ChannelBinding = []byte("0123456789abcdef0123456789abcdef")
		}
		var userSecrets []Secret
		if knownUser {
			userSecrets = secrets
		}
		c := startPipe(t, "app", userSecrets, opts)
		if _, err := c.receive(); err != nil {
			t.Fatal(err)
		}
		if c.send(&pgproto3.SASLInitialResponse{AuthMechanism: mech, Data: first}) == nil {
			if _, err := c.receive(); err == nil {
				_ = c.send(&pgproto3.SASLResponse{Data: final})
			}
		}
		err := c.finish()
		var failed *FailedError
		var pe *ProtocolError
		if !errors.As(err, &failed) && !errors.As(err, &pe) && !errors.Is(err, ErrClientClosed) {
			t.Fatalf("Authenticate returned %v, want a FailedError, ProtocolError or ErrClientClosed", err)
		}
	})
}
