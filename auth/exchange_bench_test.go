package auth

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"
)

// repeatingReader hands out the same bytes every time, so that every
// exchange in BenchmarkExchange has the same server nonce and the client's
// messages can be computed once.
type repeatingReader struct{}

func (repeatingReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(i)
	}
	return len(b), nil
}

// BenchmarkExchange is the server's side of one SCRAM-SHA-256 login: what
// pgrotate's event loop spends on a client's authentication, without the
// client's PBKDF2.
func BenchmarkExchange(b *testing.B) {
	verifier, err := NewSCRAMVerifier("apppw", 0)
	if err != nil {
		b.Fatal(err)
	}
	secrets := []Secret{mustParse(b, verifier)}
	opts := Options{Rand: repeatingReader{}}
	initial, final := clientMessages(b, secrets, opts)
	b.ReportAllocs()
	for b.Loop() {
		x, _, _, err := Start("app", secrets, opts)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := x.Receive('p', initial); err != nil {
			b.Fatal(err)
		}
		if _, done, err := x.Receive('p', final); err != nil || !done {
			b.Fatalf("the client's proof was refused: done %v, %v", done, err)
		}
	}
}

// clientMessages runs one exchange with xdg-go/scram's client and returns
// the bodies (no type byte, no length) of its SASLInitialResponse and
// SASLResponse.
func clientMessages(b *testing.B, secrets []Secret, opts Options) (initial, final []byte) {
	client, err := scram.SHA256.NewClient("", "apppw", "")
	if err != nil {
		b.Fatal(err)
	}
	conv := client.NewConversation()
	first, err := conv.Step("")
	if err != nil {
		b.Fatal(err)
	}
	x, _, _, err := Start("app", secrets, opts)
	if err != nil {
		b.Fatal(err)
	}
	initial, err = (&pgproto3.SASLInitialResponse{AuthMechanism: mechSCRAM, Data: []byte(first)}).Encode(nil)
	if err != nil {
		b.Fatal(err)
	}
	initial = initial[5:]
	cont, _, err := x.Receive('p', initial)
	if err != nil {
		b.Fatal(err)
	}
	last, err := conv.Step(string(cont.(*pgproto3.AuthenticationSASLContinue).Data))
	if err != nil {
		b.Fatal(err)
	}
	final = []byte(last)
	if _, done, err := x.Receive('p', final); err != nil || !done {
		b.Fatalf("the client's proof was refused: done %v, %v", done, err)
	}
	return initial, final
}
