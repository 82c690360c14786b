package proxy

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"testing/slogtest"
)

// A session's logger keeps its With attributes aside until it logs, and
// then writes exactly what slog's own handler would (slogtest checks the
// handler rules: attributes, groups, levels).
func TestLazyAttrsLogsWhatTheHandlerWould(t *testing.T) {
	var buf bytes.Buffer
	h := &lazyAttrs{h: slog.NewJSONHandler(&buf, nil)}
	results := func() []map[string]any {
		var ms []map[string]any
		for _, line := range bytes.Split(buf.Bytes(), []byte{'\n'}) {
			if len(line) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
		return ms
	}
	if err := slogtest.TestHandler(h, results); err != nil {
		t.Fatal(err)
	}
}

// The attributes of a session's logger come before the record's, as with
// slog's handler, loggers derived from one another do not share them, and a
// logger that logs again writes them again.
func TestLazyAttrsKeepsOrderAndDerivedLoggersApart(t *testing.T) {
	var lazy, plain bytes.Buffer
	opts := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	for _, tc := range []struct {
		buf *bytes.Buffer
		log *slog.Logger
	}{
		{&lazy, slog.New(&lazyAttrs{h: slog.NewTextHandler(&lazy, opts)})},
		{&plain, slog.New(slog.NewTextHandler(&plain, opts))},
	} {
		base := tc.log.With("client", "127.0.0.1:5000")
		a := base.With("user", "app")
		b := base.With("user", "other").WithGroup("g").With("k", 1)
		a.Info("one", "n", 1)
		b.Info("two", "n", 2)
		base.Info("three")
		a.Info("four") // a second record from a: the attributes applied once, kept
	}
	if lazy.String() != plain.String() {
		t.Fatalf("lazy handler wrote\n%s\nslog's handler wrote\n%s", lazy.String(), plain.String())
	}
	t.Log(lazy.String())
}

// A session's logger may log from the session goroutine and the event loop
// at once (go test -race).
func TestLazyAttrsLogsFromSeveralGoroutines(t *testing.T) {
	var buf bytes.Buffer // slog's handler serializes its writes
	log := slog.New(&lazyAttrs{h: slog.NewTextHandler(&buf, nil)}).With("client", "c")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { log.Info("x") })
	}
	wg.Wait()
	if n := bytes.Count(buf.Bytes(), []byte("client=c")); n != 4 {
		t.Fatalf("%d of 4 lines name the client:\n%s", n, buf.String())
	}
}
