package auth

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseSecretAcceptsPostgreSQLFormats(t *testing.T) {
	for _, v := range pgVectors {
		s, err := ParseSecret(v.secret)
		if err != nil {
			t.Fatalf("%s: ParseSecret: %v", v.name, err)
		}
		if s.Method() != MethodSCRAM || s.Iterations() != 4096 {
			t.Errorf("%s: got method %v iterations %d, want scram-sha-256 4096", v.name, s.Method(), s.Iterations())
		}
		if got := s.format(); got != v.secret {
			t.Errorf("%s: format round trip = %q, want %q", v.name, got, v.secret)
		}
	}
	s, err := ParseSecret(pgMD5Vector)
	if err != nil || s.Method() != MethodMD5 || s.format() != pgMD5Vector {
		t.Errorf("md5 vector: got %v %v, want an md5 secret that formats back", s, err)
	}
}

func TestParseSecretRejectsMalformedWithoutEchoingIt(t *testing.T) {
	scram := pgVectors[0].secret
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"plaintext password", "hunter2hunter2"},
		{"md5 too short", "md5abc"},
		{"md5 uppercase hex", "md5" + strings.ToUpper(pgMD5Vector[3:])},
		{"md5 not hex", "md5" + strings.Repeat("zz", 16)},
		{"scram-sha-1", strings.Replace(scram, "SCRAM-SHA-256", "SCRAM-SHA-1", 1)},
		{"no keys", "SCRAM-SHA-256$4096:FRXup7RLOPrL6wri0HT7pg=="},
		{"no server key", scram[:strings.LastIndex(scram, ":")]},
		{"zero iterations", strings.Replace(scram, "$4096:", "$0:", 1)},
		{"negative iterations", strings.Replace(scram, "$4096:", "$-1:", 1)},
		{"huge iterations", strings.Replace(scram, "$4096:", "$99999999999:", 1)},
		{"iterations not a number", strings.Replace(scram, "$4096:", "$4k:", 1)},
		{"bad base64 salt", strings.Replace(scram, "FRXup7RLOPrL6wri0HT7pg==", "FRX*p7RLOPrL6wri0HT7pg==", 1)},
		{"empty salt", strings.Replace(scram, "FRXup7RLOPrL6wri0HT7pg==", "", 1)},
		{"short stored key", strings.Replace(scram, "Y29ITGd8VIhsxa5Gp5WquEpXPuUp8gBbRgOnLCyamwM=", "Y29ITGd8", 1)},
		{"trailing garbage", scram + ":x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSecret(tt.in)
			if err == nil {
				t.Fatalf("ParseSecret accepted it as %v", s)
			}
			if tt.in != "" && strings.Contains(err.Error(), tt.in) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}

// TestSecretPrintsRedacted: whatever way a Secret reaches a log line, its
// salt and keys do not.
func TestSecretPrintsRedacted(t *testing.T) {
	for _, in := range []string{pgVectors[0].secret, pgMD5Vector} {
		s, err := ParseSecret(in)
		if err != nil {
			t.Fatal(err)
		}
		var logged bytes.Buffer
		slog.New(slog.NewTextHandler(&logged, nil)).Info("loaded", "secret", s)
		outputs := []string{s.String(), fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), logged.String()}
		for _, out := range outputs {
			if strings.Contains(out, in[len(in)-20:]) || !strings.Contains(out, "<redacted>") {
				t.Errorf("%q is not redacted", out)
			}
		}
	}
	if got := (Secret{}).Method(); got != 0 {
		t.Errorf("zero Secret has method %v", got)
	}
}
