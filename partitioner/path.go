package partitioner

import (
	"fmt"
	"sort"
	"strings"
)

// DefaultPathTemplate places each table under its database and schema. A
// source without a database or schema (the evodb format carries only the
// table) simply gets fewer levels: see PathTemplate.Render.
const DefaultPathTemplate = "{db}/{schema}/{table}"

// Limits on table paths. A segment is one directory name on the filesystem
// backend, where 255 bytes is the usual maximum; the whole path leaves room
// under the 1024-byte object key limit of S3 and R2 for the table's own
// keys (log versions, data file names) and the bucket prefix.
const (
	maxSegmentLen = 255
	maxPathLen    = 512
)

// Placeholders a path template may use.
const (
	placeholderDB     = "db"
	placeholderSchema = "schema"
	placeholderTable  = "table"
	placeholderTopic  = "topic"
)

// part is a literal or a placeholder within one path segment.
type part struct {
	literal     string
	placeholder string // one of the placeholder names; empty for a literal
}

// PathTemplate maps a change's database, schema, table and topic to a table
// path such as "inventory/public/users". The zero value is not usable; build
// one with ParsePathTemplate.
type PathTemplate struct {
	raw      string
	segments [][]part
}

// ParsePathTemplate parses a slash-separated template whose segments mix
// literal text with the placeholders {db}, {schema}, {table} and {topic}, for
// example "{db}/{schema}/{table}" or "cdc/{topic}/{table}".
//
// The template must use {table}: without it every table of a database would
// share one path, and two tables writing one log corrupt each other. Literal
// text follows the same character rules as rendered segments (see
// ValidateTablePath).
func ParsePathTemplate(s string) (PathTemplate, error) {
	if s == "" {
		return PathTemplate{}, fmt.Errorf("parse path template: empty")
	}
	t := PathTemplate{raw: s}
	hasTable := false
	for _, seg := range strings.Split(s, "/") {
		if seg == "" {
			return PathTemplate{}, fmt.Errorf("parse path template %q: empty segment", s)
		}
		parts, err := parseSegment(seg)
		if err != nil {
			return PathTemplate{}, fmt.Errorf("parse path template %q: %w", s, err)
		}
		if parts[0].placeholder == "" && parts[0].literal[0] == '.' {
			return PathTemplate{}, fmt.Errorf("parse path template %q: segment %q starts with '.'", s, seg)
		}
		for _, p := range parts {
			if p.placeholder == placeholderTable {
				hasTable = true
			}
		}
		t.segments = append(t.segments, parts)
	}
	if !hasTable {
		return PathTemplate{}, fmt.Errorf("parse path template %q: must contain {table}", s)
	}
	return t, nil
}

func parseSegment(seg string) ([]part, error) {
	var parts []part
	for seg != "" {
		open := strings.IndexByte(seg, '{')
		if close := strings.IndexByte(seg, '}'); close >= 0 && (open < 0 || close < open) {
			return nil, fmt.Errorf("unmatched '}' in segment %q", seg)
		}
		if open < 0 {
			parts = append(parts, part{literal: seg})
			break
		}
		if open > 0 {
			parts = append(parts, part{literal: seg[:open]})
		}
		rest := seg[open+1:]
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("unmatched '{' in segment %q", seg)
		}
		name := rest[:end]
		switch name {
		case placeholderDB, placeholderSchema, placeholderTable, placeholderTopic:
		default:
			return nil, fmt.Errorf("unknown placeholder {%s} (allowed: {db}, {schema}, {table}, {topic})", name)
		}
		parts = append(parts, part{placeholder: name})
		seg = rest[end+1:]
	}
	for _, p := range parts {
		if p.placeholder != "" {
			continue
		}
		for i := 0; i < len(p.literal); i++ {
			if !safeByte(p.literal[i]) {
				return nil, fmt.Errorf("literal %q: character %q is not allowed in a table path", p.literal, p.literal[i])
			}
		}
	}
	return parts, nil
}

// String returns the template as parsed.
func (t PathTemplate) String() string { return t.raw }

// Render fills the template in. A segment made only of placeholders whose
// values are all empty is left out, so "{db}/{schema}/{table}" renders
// "inventory/users" for a source without schemas (MySQL) and "users" for one
// that names only the table. The table name must not be empty. The result is
// checked with ValidateTablePath, so a value containing '/', "..", control
// characters or other characters unsafe in object keys is an error naming
// the value rather than a silently rewritten path.
func (t PathTemplate) Render(db, schema, table, topic string) (string, error) {
	if len(t.segments) == 0 {
		return "", fmt.Errorf("render table path: template not parsed")
	}
	if table == "" {
		return "", fmt.Errorf("render table path %q: empty table name", t.raw)
	}
	var b strings.Builder
	for _, parts := range t.segments {
		var seg strings.Builder
		literal := false
		for _, p := range parts {
			switch p.placeholder {
			case "":
				literal = true
				seg.WriteString(p.literal)
			case placeholderDB:
				seg.WriteString(db)
			case placeholderSchema:
				seg.WriteString(schema)
			case placeholderTable:
				seg.WriteString(table)
			case placeholderTopic:
				seg.WriteString(topic)
			}
		}
		if seg.Len() == 0 && !literal {
			continue
		}
		// Each segment is checked on its own: a '/' inside a value must not
		// pass as a segment separator.
		if err := validateSegment(seg.String()); err != nil {
			return "", fmt.Errorf("render table path %q for db %q schema %q table %q topic %q: %w", t.raw, db, schema, table, topic, err)
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(seg.String())
	}
	path := b.String()
	if err := ValidateTablePath(path); err != nil {
		return "", fmt.Errorf("render table path %q for db %q schema %q table %q topic %q: %w", t.raw, db, schema, table, topic, err)
	}
	return path, nil
}

// ValidateTablePath checks a table path: slash-separated, non-empty
// segments of ASCII letters, digits and the characters '-', '_', '.', '='
// (so Hive-style "db=x" segments work), no segment starting with '.' (which
// also rules out "." and ".."; many readers treat such names as hidden), at
// most 255 bytes per segment and 512 in all. Case is kept: "Users" and
// "users" are different tables, as they are in the source database.
//
// Characters outside this set are rejected rather than escaped because
// table paths end up in object keys, Delta log paths (which are URI-encoded)
// and query-engine table locations, and an escaping scheme that is safe in
// all three is harder to get right than an explicit per-table path override.
func ValidateTablePath(path string) error {
	if path == "" {
		return fmt.Errorf("empty table path")
	}
	if len(path) > maxPathLen {
		return fmt.Errorf("table path is %d bytes, more than %d", len(path), maxPathLen)
	}
	for _, seg := range strings.Split(path, "/") {
		if err := validateSegment(seg); err != nil {
			return fmt.Errorf("table path %q: %w", path, err)
		}
	}
	return nil
}

func validateSegment(seg string) error {
	switch {
	case seg == "":
		return fmt.Errorf("empty segment")
	case len(seg) > maxSegmentLen:
		return fmt.Errorf("segment is %d bytes, more than %d", len(seg), maxSegmentLen)
	case seg[0] == '.':
		return fmt.Errorf("segment %q starts with '.'", seg)
	}
	for i := 0; i < len(seg); i++ {
		if !safeByte(seg[i]) {
			return fmt.Errorf("segment %q: character %q is not allowed", seg, seg[i])
		}
	}
	return nil
}

func safeByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '-', c == '_', c == '.', c == '=':
		return true
	}
	return false
}

// Router maps changes to table paths: an explicit per-table path when the
// configuration names one, the template otherwise.
type Router struct {
	template  PathTemplate
	overrides map[string]string
}

// NewRouter builds a router. Override keys name a table as "db.schema.table",
// "schema.table", "db.table" (sources without schemas) or "table"; the most
// specific key that matches a change wins. Override values are table paths such as "com/example/users" and are
// checked with ValidateTablePath.
//
// Two overrides may not share a path, and no override path may lie inside
// another (one table's directory holding another table's log and data would
// make both unreadable). Paths rendered from the template are not checked
// against overrides here; keep explicit paths out of the template's shape.
func NewRouter(defaultTemplate PathTemplate, overrides map[string]string) (*Router, error) {
	if len(defaultTemplate.segments) == 0 {
		return nil, fmt.Errorf("new router: path template not parsed")
	}
	r := &Router{template: defaultTemplate, overrides: make(map[string]string, len(overrides))}
	keys := make([]string, 0, len(overrides))
	for k, path := range overrides {
		if k == "" {
			return nil, fmt.Errorf("new router: override with empty table name")
		}
		if err := ValidateTablePath(path); err != nil {
			return nil, fmt.Errorf("new router: override for %q: %w", k, err)
		}
		r.overrides[k] = path
		keys = append(keys, k)
	}
	// Sorted keys make the reported conflict the same on every run.
	sort.Strings(keys)
	for i, a := range keys {
		for _, b := range keys[i+1:] {
			pa, pb := overrides[a], overrides[b]
			if pa == pb || Nested(pa, pb) || Nested(pb, pa) {
				return nil, fmt.Errorf("new router: overrides for %q (%s) and %q (%s) overlap", a, pa, b, pb)
			}
		}
	}
	return r, nil
}

// Nested says whether the table path inner lies inside the table path
// outer ("inv/data" inside "inv"). Such tables cannot coexist: the outer
// table's data/ and the inner table's files share keys, and the outer
// table's vacuum and readers listing its directory would see the inner
// table's objects.
func Nested(outer, inner string) bool {
	return len(inner) > len(outer) && strings.HasPrefix(inner, outer) && inner[len(outer)] == '/'
}

// Route returns the table path of a change.
func (r *Router) Route(db, schema, table, topic string) (string, error) {
	if table != "" && len(r.overrides) > 0 {
		candidates := [3]string{table, "", ""}
		n := 1
		if schema != "" {
			candidates[n] = schema + "." + table
			n++
			if db != "" {
				candidates[n] = db + "." + schema + "." + table
				n++
			}
		} else if db != "" {
			candidates[n] = db + "." + table
			n++
		}
		for i := n - 1; i >= 0; i-- {
			if p, ok := r.overrides[candidates[i]]; ok {
				return p, nil
			}
		}
	}
	return r.template.Render(db, schema, table, topic)
}
