package configs_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgrotate/pgrotate/configs"
)

// FuzzParse: whatever the bytes, Parse returns either a config or an
// Errors of problems with a file name, and never panics or hangs (aliases
// that expand to billions of nodes included).
func FuzzParse(f *testing.F) {
	f.Add([]byte(validDoc))
	examples, _ := filepath.Glob(filepath.Join("examples", "*.yaml"))
	for _, e := range examples {
		if data, err := os.ReadFile(e); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := configs.Parse(data, "fuzz.yaml")
		if err == nil {
			if c == nil || len(c.Databases) == 0 || len(c.Clients) == 0 {
				t.Fatalf("Parse returned no error but config %+v", c)
			}
			return
		}
		var list configs.Errors
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error %T %v is not a non-empty configs.Errors", err, err)
		}
		for _, e := range list {
			if e.File != "fuzz.yaml" || e.Msg == "" {
				t.Fatalf("problem without file or message: %+v", *e)
			}
		}
	})
}
