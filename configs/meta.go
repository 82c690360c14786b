package configs

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// meta is what parsing learns about the file besides the values: where each
// key was written and which values came from the environment. Validation
// uses it to point at lines and to keep expanded values out of messages.
type meta struct {
	file string
	// lines maps a key path ("databases.bookstore.pool_size", "clients[0]")
	// to the line it was written on.
	lines map[string]int
	// written maps a scalar that ${…} expansion changed to its text as
	// written in the file; written[path] is the same, by key path.
	writtenNode map[*yaml.Node]string
	written     map[string]string
	// bad holds the key paths that already have a parse problem, so that
	// validation does not pile a second, derived complaint on them.
	bad  map[string]bool
	errs Errors
}

func newMeta(file string) *meta {
	return &meta{
		file:        file,
		lines:       map[string]int{},
		writtenNode: map[*yaml.Node]string{},
		written:     map[string]string{},
		bad:         map[string]bool{},
	}
}

// parseError records a problem found while reading the YAML tree.
func (m *meta) parseError(path string, line int, format string, args ...any) {
	m.bad[path] = true
	m.errs = append(m.errs, &Error{File: m.file, Line: line, Key: path, Msg: fmt.Sprintf(format, args...)})
}

// invalid records a validation problem at path, unless path is already
// known to be bad from parsing.
func (m *meta) invalid(path string, format string, args ...any) {
	if m.related(path) {
		return
	}
	m.errs = append(m.errs, &Error{File: m.file, Line: m.lineOf(path), Key: path, Msg: fmt.Sprintf(format, args...)})
}

// related reports whether a parse problem was found at path, inside it or
// at one of its parents.
func (m *meta) related(path string) bool {
	for b := range m.bad {
		if b == path || isUnder(b, path) || isUnder(path, b) {
			return true
		}
	}
	return false
}

// isUnder reports whether path is strictly inside parent.
func isUnder(path, parent string) bool {
	if parent == "" {
		return path != ""
	}
	rest, ok := strings.CutPrefix(path, parent)
	return ok && rest != "" && (rest[0] == '.' || rest[0] == '[')
}

// lineOf returns the line path was written on or, for a key left out, the
// line of its nearest written parent; 0 when nothing is known.
func (m *meta) lineOf(path string) int {
	for path != "" {
		if l, ok := m.lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// parentPath strips the last ".key" or "[n]" from path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// childPath joins a mapping key to its parent's path.
func childPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// itemPath joins a list index to its parent's path.
func itemPath(parent string, i int) string {
	return fmt.Sprintf("%s[%d]", parent, i)
}

// show quotes a value for an error message. A value that came from the
// environment may be a secret: it is shown as written ("${VAR}") instead.
func (m *meta) show(path, value string) string {
	if w, ok := m.written[path]; ok {
		return fmt.Sprintf("%q from the environment (value not shown)", w)
	}
	return quoteShort(value)
}

// quoteShort quotes s, cut to a length that keeps one problem on one line.
func quoteShort(s string) string {
	const max = 40
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

// result returns the problems in file order, or nil when there are none.
func (m *meta) result() error {
	if len(m.errs) == 0 {
		return nil
	}
	sort.SliceStable(m.errs, func(i, j int) bool { return m.errs[i].Line < m.errs[j].Line })
	return m.errs
}
