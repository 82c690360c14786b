package proxy

import (
	"bytes"
	"io"
	"slices"
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

// A transaction-mode client is greeted with the server's defaults, its own
// settings laid over the parameters the server reports (a setting the
// server does not report is not announced), in order of name. The defaults
// are shared by every login and stay as they were, and a parameter costs
// the greeting no allocation.
func TestGreetingLaysTheClientsSettingsOverTheDefaults(t *testing.T) {
	defaults := sortedParams(map[string]string{
		"application_name": "", "TimeZone": "UTC", "DateStyle": "ISO, MDY", "server_version": "15.18",
	})
	settings := map[string]string{"TimeZone": "Asia/Tokyo", "application_name": "shop", "search_path": "app"}
	s := &session{}
	w := outbox{buf: make([]byte, 0, greetingSize)}
	s.queueGreeting(&w, defaults, settings)
	mustOK(t, w.err)

	var got []string
	f := pgproto3.NewFrontend(bytes.NewReader(w.buf), io.Discard)
	for {
		msg, err := f.Receive()
		mustOK(t, err)
		if ps, ok := msg.(*pgproto3.ParameterStatus); ok {
			got = append(got, ps.Name+"="+ps.Value)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	want := []string{"DateStyle=ISO, MDY", "TimeZone=Asia/Tokyo", "application_name=shop", "server_version=15.18"}
	if !slices.Equal(got, want) {
		t.Errorf("greeting's parameters %q, want %q", got, want)
	}
	if d := defaults[1]; d.name != "TimeZone" || d.value != "UTC" {
		t.Errorf("the shared defaults changed: %v", defaults)
	}
	allocs := func(params reportedParams) float64 {
		return testing.AllocsPerRun(100, func() {
			w.buf = w.buf[:0]
			s.queueGreeting(&w, params, settings)
		})
	}
	if with, without := allocs(defaults), allocs(nil); with != without {
		t.Errorf("queueing a greeting: %v allocations with 4 parameters, %v with none; want as many", with, without)
	}
}
