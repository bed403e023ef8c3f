package main

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// fileKey is one key of the configuration file: its path from the root
// ("tables.default.flush_interval"; "[0]" for a list item) and its value.
type fileKey struct {
	path  []string
	value *yaml.Node
}

func (k fileKey) name() string {
	return strings.ReplaceAll(strings.Join(k.path, "."), ".[", "[")
}

// fileKeys indexes the keys of a parsed file by the line of the key and by
// the line of the value: yaml.v3 reports an unknown key at the former and
// a value of the wrong type at the latter.
type fileKeys struct {
	byKeyLine, byValueLine map[int][]fileKey
}

func indexKeys(root *yaml.Node) fileKeys {
	fk := fileKeys{byKeyLine: map[int][]fileKey{}, byValueLine: map[int][]fileKey{}}
	var walk func(n *yaml.Node, path []string)
	walk = func(n *yaml.Node, path []string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := append(append([]string(nil), path...), k.Value)
				fk.byKeyLine[k.Line] = append(fk.byKeyLine[k.Line], fileKey{p, v})
				fk.byValueLine[v.Line] = append(fk.byValueLine[v.Line], fileKey{p, v})
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := append(append([]string(nil), path...), "["+strconv.Itoa(i)+"]")
				fk.byValueLine[c.Line] = append(fk.byValueLine[c.Line], fileKey{p, c})
				walk(c, p)
			}
		}
	}
	walk(root, nil)
	return fk
}

var (
	// unknownField and wrongType match the two kinds of message in a
	// yaml.v3 TypeError.
	unknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type \S+$`)
	wrongType    = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")
	lineNumber   = regexp.MustCompile(`^line (\d+): `)
)

// explainDecodeError rewrites yaml.v3's decoding errors in the operator's
// terms: the key's full path instead of a Go type ("unknown key
// tables.default.flush_intervall (did you mean flush_interval?)") and the
// value wanted instead of YAML tags ("want a duration such as 5s, got 5").
func explainDecodeError(err error, root *yaml.Node) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	fk := indexKeys(root)
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		msgs = append(msgs, fk.explain(m))
	}
	return errors.New(strings.Join(msgs, "; "))
}

// explain rewrites one yaml.v3 message.
func (fk fileKeys) explain(msg string) string {
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		name := m[2]
		for _, k := range fk.byKeyLine[line] {
			if k.path[len(k.path)-1] != name {
				continue
			}
			return fmt.Sprintf("line %d: unknown key %s%s", line, k.name(), suggestKey(k.path))
		}
		return fmt.Sprintf("line %d: unknown key %s", line, name)
	}
	if m := wrongType.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		tag, value, goType := m[2], m[3], m[4]
		got := value
		switch tag {
		case "map":
			got = "a mapping"
		case "seq":
			got = "a list"
		}
		// Several values can start on one line ("kafka:" and a flow
		// mapping under it): the one whose Go type yaml.v3 names is meant,
		// else the innermost.
		var match *fileKey
		for _, k := range fk.byValueLine[line] {
			if k.value.ShortTag() != "!!"+tag || (value != "" && k.value.Value != value) {
				continue
			}
			if t := configType(k.path); t != nil && t.String() == goType {
				match = &k
				break
			}
			match = &k
		}
		if match == nil {
			return fmt.Sprintf("line %d: want %s, got %s", line, describeType(nil, goType), got)
		}
		return fmt.Sprintf("line %d (%s): want %s, got %s", line, match.name(), describeType(match.path, goType), got)
	}
	if m := lineNumber.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if keys := fk.byValueLine[line]; len(keys) > 0 {
			return fmt.Sprintf("line %d (%s): %s", line, keys[0].name(), strings.TrimPrefix(msg, m[0]))
		}
	}
	return msg
}

// configType returns the Go type that holds the value at path in the
// configuration file, or nil if the path names no key.
func configType(path []string) reflect.Type {
	t := reflect.TypeOf(fileConfig{})
	for _, c := range path {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			ft, ok := yamlFields(t)[c]
			if !ok {
				return nil
			}
			t = ft
		case reflect.Map, reflect.Slice:
			t = t.Elem()
		default:
			return nil
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// yamlFields maps the keys of a configuration struct to their types,
// inline structs included.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// suggestKey returns " (did you mean X?)" for the known key closest to the
// last element of path, or the list of known keys where it is when none is
// close.
func suggestKey(path []string) string {
	parent := configType(path[:len(path)-1])
	if parent == nil || parent.Kind() != reflect.Struct {
		return ""
	}
	name := path[len(path)-1]
	var known []string
	for k := range yamlFields(parent) {
		known = append(known, k)
	}
	sort.Strings(known)
	best, bestDist := "", -1
	for _, k := range known {
		d := editDistance(name, k)
		if bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" && (bestDist <= max(2, len(name)/4) || strings.HasPrefix(best, name)) {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	if elsewhere := keyPaths(reflect.TypeOf(fileConfig{}), "", name); len(elsewhere) > 0 {
		return fmt.Sprintf(" (%s is a key under %s)", name, strings.Join(elsewhere, " and "))
	}
	where := "top-level keys"
	if len(path) > 1 {
		where = "keys under " + strings.Join(path[:len(path)-1], ".")
	}
	return fmt.Sprintf(" (%s: %s)", where, strings.Join(known, ", "))
}

// keyPaths lists where in the configuration under t (at prefix) a key
// named name exists; a map's keys show as <name>.
func keyPaths(t reflect.Type, prefix, name string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Map:
		return keyPaths(t.Elem(), prefix+".<name>", name)
	case reflect.Struct:
	default:
		return nil
	}
	fields := yamlFields(t)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		p := strings.TrimPrefix(prefix+"."+k, ".")
		if k == name {
			out = append(out, strings.TrimPrefix(prefix, "."))
			continue
		}
		out = append(out, keyPaths(fields[k], p, name)...)
	}
	return out
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describeType says in words what a key at path takes; goType, from
// yaml.v3's message, is the fallback when the path names no known key.
func describeType(path []string, goType string) string {
	t := configType(path)
	if t == nil {
		return "a value of type " + goType
	}
	if t == reflect.TypeOf(time.Duration(0)) {
		return "a duration such as 5s, 1m30s or 2h"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping of keys to values"
	}
	return "a value of type " + goType
}
