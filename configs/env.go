package configs

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// expandEnv replaces ${VAR} and ${VAR:-default} in every scalar value of the
// tree, in place, before decoding, so the nodes keep their lines. Keys are
// not expanded: they are names, not settings. A value is expanded once even
// when aliases reach it from several places.
func expandEnv(n *yaml.Node, path string, m *meta, seen map[*yaml.Node]bool) {
	if n == nil || seen[n] {
		return
	}
	seen[n] = true
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			expandEnv(c, path, m, seen)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expandEnv(c, itemPath(path, i), m, seen)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := childPath(path, k.Value)
			if k.Tag == mergeTag {
				p = path // a merged mapping's keys belong to this mapping
			}
			expandEnv(n.Content[i+1], p, m, seen)
		}
	case yaml.ScalarNode:
		expandScalar(n, path, m)
	}
}

// expandScalar expands one value and remembers how it was written.
func expandScalar(n *yaml.Node, path string, m *meta) {
	if !strings.Contains(n.Value, "$") {
		return
	}
	v, err := expand(n.Value, os.LookupEnv)
	if err != nil {
		m.parseError(path, n.Line, "%v", err)
		n.Value = ""
		return
	}
	if v != n.Value {
		m.writtenNode[n] = n.Value
		n.Value = v
	}
}

// expand replaces ${VAR}, ${VAR:-default} and $$ in s. A "$" followed by
// anything else is kept as is: SCRAM verifiers are full of them.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) || (s[i+1] != '$' && s[i+1] != '{') {
			b.WriteByte(s[i])
			continue
		}
		if s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", errors.New(`"${" without a closing "}"; write "$$" for a literal "$"`)
		}
		v, err := lookupRef(s[i+2:i+2+end], lookup)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		i += 2 + end
	}
	return b.String(), nil
}

// lookupRef resolves the inside of one ${…}. As in the shell, ":-" also
// applies the default when the variable is set but empty.
func lookupRef(ref string, lookup func(string) (string, bool)) (string, error) {
	name, def, hasDef := strings.Cut(ref, ":-")
	if !isEnvName(name) {
		return "", fmt.Errorf("%s is not an environment variable name (letters, digits and _, not starting with a digit); write \"$$\" for a literal \"$\"", quoteShort(name))
	}
	if v, ok := lookup(name); ok && (v != "" || !hasDef) {
		return v, nil
	}
	if hasDef {
		return def, nil
	}
	return "", fmt.Errorf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)
}

// isEnvName reports whether s is a POSIX shell variable name.
func isEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range []byte(s) {
		if c != '_' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
