package configs

import (
	"fmt"
	"strings"
)

// Error is one problem in a config file, at a line and a key.
type Error struct {
	// File is the file name given to Parse or Load.
	File string
	// Line is the 1-based line of the key, or 0 when the problem concerns
	// the file as a whole.
	Line int
	// Key is the dotted path of the key, such as "databases.bookstore.pool_size"
	// or "clients[0].user"; "" for syntax errors.
	Key string
	// Msg says what is wrong and what is allowed. It never holds a value
	// that came from the environment.
	Msg string
}

// Error formats the problem as "file:line: key: msg".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one config file, in file order.
type Errors []*Error

// Error lists the problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives errors.As and errors.Is access to each problem.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
