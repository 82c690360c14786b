package proxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// A server connection keeps the last value of each parameter the server
// reports; a malformed ParameterStatus changes nothing, and one that
// repeats a known value allocates nothing (a session-mode login reads a
// dozen of those).
func TestServerConnNotesParameters(t *testing.T) {
	sc := &serverConn{params: map[string]string{"TimeZone": "UTC"}}
	status := func(name, value string) []byte {
		msg, err := (&pgproto3.ParameterStatus{Name: name, Value: value}).Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		return msg[headerLen:]
	}
	sc.noteParameter(status("TimeZone", "Asia/Tokyo"))
	sc.noteParameter(status("application_name", ""))
	sc.noteParameter([]byte("DateStyle\x00ISO")) // no terminating zero
	want := map[string]string{"TimeZone": "Asia/Tokyo", "application_name": ""}
	if len(sc.params) != len(want) || sc.params["TimeZone"] != want["TimeZone"] || sc.params["application_name"] != "" {
		t.Fatalf("params = %q, want %q", sc.params, want)
	}
	same := status("TimeZone", "Asia/Tokyo")
	if n := testing.AllocsPerRun(100, func() { sc.noteParameter(same) }); n != 0 {
		t.Errorf("noting a known value: %v allocations, want 0", n)
	}
}
