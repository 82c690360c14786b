package proxy

import (
	"fmt"
	"testing"
)

// Clients that prepare the same text under the same settings share one
// server-side name; the registry forgets statements nobody prepared for two
// generations, so an app that makes up statement texts as it goes (literals
// in the text) cannot grow pgrotate's memory without end. A statement
// forgotten and prepared again gets a new name, never an old one.
func TestStmtRegistryIsBounded(t *testing.T) {
	r := newStmtRegistry()
	r.generation = 8
	hot := r.serverName("SELECT $1", []uint32{23}, "k")
	if again := r.serverName("SELECT $1", []uint32{23}, "k"); again != hot {
		t.Fatalf("same statement: %q then %q", hot, again)
	}
	if other := r.serverName("SELECT $1", []uint32{23}, "other settings"); other == hot {
		t.Fatal("other settings share a name")
	}
	seen := map[string]bool{hot: true}
	for i := range 100 {
		n := r.serverName(fmt.Sprintf("SELECT %d", i), nil, "k")
		if seen[n] {
			t.Fatalf("name %q given twice", n)
		}
		seen[n] = true
		if i%5 == 0 { // the hot statement, prepared again now and then, keeps its name
			if got := r.serverName("SELECT $1", []uint32{23}, "k"); got != hot {
				t.Fatalf("hot statement renamed %q → %q", hot, got)
			}
		}
		if held := len(r.names) + len(r.older); held > 2*r.generation {
			t.Fatalf("registry holds %d statements, more than two generations of %d", held, r.generation)
		}
	}
	// Long texts end a generation by their bytes.
	r.generationBytes = 1000
	for i := range 50 {
		r.serverName(fmt.Sprintf("SELECT %d, '%0400d'", i, i), nil, "k")
		if r.bytes > r.generationBytes {
			t.Fatalf("a generation holds %d bytes of text, more than %d", r.bytes, r.generationBytes)
		}
	}
	if held := len(r.names) + len(r.older); held > 6 {
		t.Fatalf("registry holds %d long statements; want at most two generations of 1000 bytes", held)
	}
	if n := r.serverName("SELECT 0", nil, "k"); seen[n] {
		t.Fatalf("a forgotten statement prepared again got an old name %q", n)
	}
}
