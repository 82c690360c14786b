package pgcluster

import (
	"io"
	"os"
	"strings"
)

// tailBytes bounds how much of the server log goes into an error.
const tailBytes = 4096

// logTail returns the last lines of the server log, or a note saying why
// there are none.
func (c *Cluster) logTail() string {
	size := fileSize(c.LogFile)
	text := readFrom(c.LogFile, max(0, size-tailBytes))
	if text == "" {
		return "(empty or missing)"
	}
	return lastLines(text, 15)
}

// readFrom returns the content of path from offset on, or "" on any error.
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return string(b)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// lastLines keeps the last n lines of text.
func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// section formats a titled, indented block for a multi-line error, or ""
// when body is empty.
func section(title, body string) string {
	if strings.TrimSpace(body) == "" {
		return ""
	}
	return "\n--- " + title + " ---\n" + body
}
