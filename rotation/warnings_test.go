package rotation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWarnings documents the start-up warnings: a single-file mount that
// kubelet never updates, and a credential other local users can read.
func TestWarnings(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string
		want  []string // substrings, one per expected warning, in order
	}{
		{
			name: "subPath-style single key file",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "password")
				writeFile(t, p, secret)
				return p
			},
			want: []string{"single-file mount; if this is a Kubernetes subPath mount it will never update"},
		},
		{
			name: "key of a mounted Secret volume",
			setup: func(t *testing.T, dir string) string {
				writeKubeSecret(t, dir, map[string]string{"credentials.json": "{}"})
				must(t, os.Chmod(dir, 0o700))
				return filepath.Join(dir, "credentials.json")
			},
			want: nil,
		},
		{
			name: "Vault agent file, private",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "bookstore.json")
				writeFile(t, p, "{}")
				return p
			},
			want: nil,
		},
		{
			name: "world-readable file",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "bookstore.url")
				writeFile(t, p, "postgres://")
				must(t, os.Chmod(p, 0o644))
				return p
			},
			want: []string{"is world-readable (mode 0644)"},
		},
		{
			name: "Secret volume with the default mode 0644",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "bookstore")
				writeKubeSecret(t, p, map[string]string{"username": "u", "password": secret})
				must(t, os.Chmod(p, 0o755))
				must(t, os.Chmod(filepath.Join(p, "password"), 0o644))
				return p
			},
			want: []string{"bookstore is world-readable (mode 0755)", "password is world-readable (mode 0644)"},
		},
		{
			name:  "missing path",
			setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "nope") },
			want:  nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			must(t, os.Chmod(dir, 0o700))
			got := Warnings(tt.setup(t, dir), FormatAuto)
			if len(got) != len(tt.want) {
				t.Fatalf("Warnings = %q, want %d warnings matching %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}
