package configs

import (
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// mergeTag marks a "<<" key, YAML's merge of an anchored mapping, which
// lets several databases share settings.
const mergeTag = "!!merge"

// maxNodes bounds the nodes decoded, aliases followed: a few lines of
// nested aliases can otherwise stand for billions of nodes.
const maxNodes = 100_000

// decoder fills Go values from a yaml.Node tree by reflection on the yaml
// struct tags. It is written by hand rather than using yaml.v3's Decode so
// that every unknown key and wrong type is reported with its line and full
// key path, all of them at once, and without quoting expanded values.
type decoder struct {
	m      *meta
	budget int
}

// pair is one key and its value in a mapping.
type pair struct{ key, val *yaml.Node }

// decode stores n into v, the value at path. A null leaves v as it is, so
// defaults set before decoding survive "key:" with nothing after it.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = d.resolve(n, path)
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return
	}
	if v.Type() == reflect.TypeFor[Duration]() {
		d.duration(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.Slice:
		d.sequence(n, v, path)
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	default:
		d.scalar(n, v, path)
	}
}

// resolve follows aliases and charges the node budget; nil means stop.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.budget--
	if d.budget == 0 && n != nil {
		d.m.parseError(path, n.Line, "too many nodes once aliases are expanded (the limit is %d)", maxNodes)
	}
	if d.budget <= 0 {
		return nil
	}
	return n
}

// structure decodes a mapping into a struct, field by yaml tag.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if !d.expect(n, yaml.MappingNode, path) {
		return
	}
	for _, p := range d.pairs(n, path) {
		key := childPath(path, p.key.Value)
		f, ok := fieldByTag(v, p.key.Value)
		if !ok {
			d.m.parseError(key, p.key.Line, "unknown key")
			continue
		}
		d.m.lines[key] = p.key.Line
		d.decode(p.val, f, key)
	}
}

// fieldByTag finds the struct field whose yaml tag is name.
func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == name && name != "" && name != "-" && t.Field(i).IsExported() {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// defaulter is a map element that knows its defaults, given its key.
type defaulter interface{ setDefaults(name string) }

// mapping decodes a mapping into a map with string keys.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if !d.expect(n, yaml.MappingNode, path) {
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, p := range d.pairs(n, path) {
		key := childPath(path, p.key.Value)
		d.m.lines[key] = p.key.Line
		elem := reflect.New(v.Type().Elem()).Elem()
		if elem.Kind() == reflect.Pointer {
			elem.Set(reflect.New(elem.Type().Elem()))
		}
		if df, ok := elem.Interface().(defaulter); ok {
			df.setDefaults(p.key.Value)
		}
		d.decode(p.val, elem, key)
		v.SetMapIndex(reflect.ValueOf(p.key.Value), elem)
	}
}

// sequence decodes a list into a slice.
func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if !d.expect(n, yaml.SequenceNode, path) {
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := itemPath(path, i)
		d.m.lines[p] = item.Line
		d.decode(item, out.Index(i), p)
	}
	v.Set(out)
}

// pairs lists a mapping's keys and values with "<<" merges applied: keys
// written in the mapping win over merged ones, and duplicates are errors.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var own, merged []pair
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		switch {
		case k.Tag == mergeTag:
			merged = append(merged, d.mergeSources(val, path)...)
		case k.Kind != yaml.ScalarNode:
			d.m.parseError(path, k.Line, "a key must be a plain string")
		case first[k.Value] != 0:
			d.m.parseError(childPath(path, k.Value), k.Line, "duplicate key (first written on line %d)", first[k.Value])
		default:
			first[k.Value] = k.Line
			own = append(own, pair{k, val})
		}
	}
	for _, p := range merged {
		if first[p.key.Value] == 0 {
			first[p.key.Value] = p.key.Line
			own = append(own, p)
		}
	}
	return own
}

// mergeSources returns the pairs a "<<" value brings: one mapping, or a
// list of mappings of which the first to have a key wins.
func (d *decoder) mergeSources(n *yaml.Node, path string) []pair {
	n = d.resolve(n, path)
	if n == nil {
		return nil
	}
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	var out []pair
	for _, it := range items {
		if it = d.resolve(it, path); it == nil {
			continue
		}
		if it.Kind != yaml.MappingNode {
			d.m.parseError(path, it.Line, "<< must merge a mapping or a list of mappings")
			continue
		}
		out = append(out, d.pairs(it, path)...)
	}
	return out
}

// expect reports whether n is of the wanted kind, recording a problem if not.
func (d *decoder) expect(n *yaml.Node, want yaml.Kind, path string) bool {
	if n.Kind == want {
		return true
	}
	d.m.parseError(path, n.Line, "expected %s, got %s", kindName(want), kindName(n.Kind))
	return false
}

// kindName names a node kind the way the config documentation does.
func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

// scalar decodes a single value into a string, integer or boolean.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	if !d.expect(n, yaml.ScalarNode, path) {
		return
	}
	d.noteWritten(n, path)
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Int:
		i, err := strconv.Atoi(n.Value)
		if err != nil {
			d.m.parseError(path, n.Line, "expected an integer, got %s", d.m.show(path, n.Value))
			return
		}
		v.SetInt(int64(i))
	case reflect.Bool:
		b, ok := parseBool(n.Value)
		if !ok {
			d.m.parseError(path, n.Line, "expected true or false, got %s", d.m.show(path, n.Value))
			return
		}
		v.SetBool(b)
	default:
		panic("configs: no decoder for " + v.Type().String()) // a schema bug, caught by the tests
	}
}

// duration decodes "5s", "1h30m" or a whole number of seconds.
func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	if !d.expect(n, yaml.ScalarNode, path) {
		return
	}
	d.noteWritten(n, path)
	dur, err := parseDuration(n.Value)
	if err != nil {
		d.m.parseError(path, n.Line, "expected a duration such as \"30s\", \"5m\" or \"1h30m\", or a number of seconds, got %s", d.m.show(path, n.Value))
		return
	}
	v.Set(reflect.ValueOf(Duration{dur}))
}

// noteWritten carries what the expander learnt about n over to its path.
func (d *decoder) noteWritten(n *yaml.Node, path string) {
	if w, ok := d.m.writtenNode[n]; ok {
		d.m.written[path] = w
	}
}

// parseBool accepts YAML's spellings of a boolean.
func parseBool(s string) (value, ok bool) {
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	return false, false
}
