package auth

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestVerifierMatchesPostgreSQL rebuilds PostgreSQL's own verifiers from the
// password and PostgreSQL's salt: byte-identical output means pgrotate
// prepares passwords (SASLprep and its raw-bytes fallback) and derives keys
// exactly as PostgreSQL does.
func TestVerifierMatchesPostgreSQL(t *testing.T) {
	for _, v := range pgVectors {
		t.Run(v.name, func(t *testing.T) {
			salt := saltOf(t, v.secret)
			got, err := NewSCRAMVerifierWithSalt(v.password, salt, 4096)
			if err != nil {
				t.Fatal(err)
			}
			if got != v.secret {
				t.Errorf("NewSCRAMVerifierWithSalt = %q, PostgreSQL made %q", got, v.secret)
			}
		})
	}
}

func TestMD5SecretMatchesPostgreSQL(t *testing.T) {
	if got := MD5Secret("auth_probe_md5", "secret0001"); got != pgMD5Vector {
		t.Errorf("MD5Secret = %q, PostgreSQL made %q", got, pgMD5Vector)
	}
}

func TestNewSCRAMVerifierShape(t *testing.T) {
	tests := []struct {
		iterations, want int
	}{{0, 4096}, {4096, 4096}, {10000, 10000}}
	for _, tt := range tests {
		v, err := NewSCRAMVerifier("pw", tt.iterations)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParseSecret(v)
		if err != nil {
			t.Fatalf("ParseSecret(NewSCRAMVerifier(…)): %v", err)
		}
		if s.Iterations() != tt.want || len(s.salt) != 16 {
			t.Errorf("iterations %d: got %d iterations and a %d-byte salt, want %d and 16", tt.iterations, s.Iterations(), len(s.salt), tt.want)
		}
		if s.format() != v {
			t.Errorf("round trip changed the verifier")
		}
	}
	a, _ := NewSCRAMVerifier("pw", 0)
	b, _ := NewSCRAMVerifier("pw", 0)
	if a == b {
		t.Error("two verifiers of one password share a salt; the salt must be random")
	}
	if _, err := NewSCRAMVerifier("pw", -1); err == nil {
		t.Error("negative iteration count accepted")
	}
	if _, err := NewSCRAMVerifierWithSalt("pw", nil, 0); err == nil {
		t.Error("empty salt accepted")
	}
}

func saltOf(t *testing.T, verifier string) []byte {
	t.Helper()
	_, rest, _ := strings.Cut(verifier, ":")
	salt, err := base64.StdEncoding.DecodeString(rest[:strings.Index(rest, "$")])
	if err != nil {
		t.Fatal(err)
	}
	return salt
}
