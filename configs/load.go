package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Load reads the config file at path and parses it with Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(data, path)
}

// Parse parses, expands, defaults and validates a config file; filename is
// used in error messages and stored as Config.Path. On failure the error is
// an Errors listing every problem found, each an *Error with its line.
func Parse(data []byte, filename string) (*Config, error) {
	m := newMeta(filename)
	doc, err := parseDocument(data)
	if err != nil {
		m.errs = append(m.errs, syntaxError(filename, err))
		return nil, m.result()
	}
	expandEnv(doc, "", m, map[*yaml.Node]bool{})

	c := defaultConfig()
	c.Path, c.meta = filename, m
	if len(doc.Content) > 0 { // an empty file has no document
		d := decoder{m: m, budget: maxNodes}
		d.decode(doc.Content[0], reflect.ValueOf(c).Elem(), "")
	}
	if c.AdminListen == adminOff {
		c.AdminListen = ""
	}
	c.validate()
	c.meta = nil // it holds the node tree, which the caller has no use for
	if err := m.result(); err != nil {
		return nil, err
	}
	return c, nil
}

// parseDocument reads the one YAML document in data into a node tree; an
// empty file gives an empty document. A second document ("---") is an
// error rather than silently ignored, as yaml.Unmarshal would.
func parseDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc, next yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("yaml: line %d: only one YAML document is allowed", next.Line)
	}
	return &doc, nil
}

// yamlLine splits yaml.v3's syntax errors ("yaml: line 3: …").
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// parserProblems are the yaml.v3 parser's (not scanner's) messages. For
// them yaml.v3 v3.0.1 reports the 0-based line of the construct being
// parsed, and leaves the line out on the first line (decode.go, fail).
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// syntaxError turns a yaml.v3 syntax error into an *Error with its line.
func syntaxError(file string, err error) *Error {
	sub := yamlLine.FindStringSubmatch(err.Error())
	if sub == nil {
		return &Error{File: file, Msg: err.Error()}
	}
	line, _ := strconv.Atoi(sub[1])
	if parserProblems[sub[2]] {
		line++
	}
	return &Error{File: file, Line: line, Msg: sub[2]}
}
