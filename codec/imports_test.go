package codec

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/evodb/sink/"

// importRule is what one package of the codec tree may import: of this
// module only the packages in allow, and nothing under a forbidden prefix
// of another module.
type importRule struct {
	dir    string // relative to codec
	allow  []string
	forbid []string
}

// formats are the file and table formats the row model must not know:
// Parquet, the table-format libraries, and the Kafka client (the sink
// copies a record's fields into Record).
var formats = []string{
	"github.com/parquet-go/",
	"github.com/apache/iceberg-go",
	"github.com/delta-io/",
	"github.com/twmb/franz-go/",
}

// codecRules state the seams of the codec tree: the row model (codec)
// imports no other package of the module and no file, table or input
// format; the CDC decoders (cdc, confluent) and Parquet block I/O
// (parquetblock) import the row model and not each other, and no table
// format (committer/...). Only direct imports are checked: since codec
// imports nothing of the module, a package that imports only codec cannot
// reach a table format through it.
var codecRules = []importRule{
	{dir: ".", forbid: formats},
	{dir: "cdc", allow: []string{"codec"}, forbid: formats},
	{dir: "confluent", allow: []string{"codec", "codec/cdc"}, forbid: []string{"github.com/parquet-go/", "github.com/apache/iceberg-go", "github.com/delta-io/"}},
	{dir: "parquetblock", allow: []string{"codec"}, forbid: []string{"github.com/apache/iceberg-go", "github.com/delta-io/", "github.com/twmb/franz-go/"}},
}

// violations returns the imports of one file's source that break r.
func (r importRule) violations(fset *token.FileSet, name string, src any) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
	if err != nil {
		return nil, err
	}
	var bad []string
	for _, spec := range f.Imports {
		path, err := strconv.Unquote(spec.Path.Value)
		if err != nil {
			return nil, err
		}
		if rel, ok := strings.CutPrefix(path, module); ok {
			allowed := false
			for _, a := range r.allow {
				allowed = allowed || rel == a
			}
			if !allowed {
				bad = append(bad, path)
			}
			continue
		}
		for _, p := range r.forbid {
			if strings.HasPrefix(path, p) {
				bad = append(bad, path)
			}
		}
	}
	return bad, nil
}

// TestRowModelImports enforces the seams of the codec tree on every
// non-test file (tests may use a sibling package: the decoders' fuzz test
// checks that what they accept encodes).
func TestRowModelImports(t *testing.T) {
	fset := token.NewFileSet()
	for _, r := range codecRules {
		files, err := filepath.Glob(filepath.Join(r.dir, "*.go"))
		require.NoError(t, err)
		checked := 0
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(name)
			require.NoError(t, err)
			bad, err := r.violations(fset, name, src)
			require.NoError(t, err)
			require.Empty(t, bad, "%s imports what the codec seams forbid", name)
			checked++
		}
		require.NotZero(t, checked, "no Go files in %s", r.dir)
	}
}

// The rules catch what they are for: the row model importing Parquet or
// a decoder, and a decoder importing block I/O or a table format.
func TestRowModelImportsCatch(t *testing.T) {
	fset := token.NewFileSet()
	rule := func(dir string) importRule {
		for _, r := range codecRules {
			if r.dir == dir {
				return r
			}
		}
		t.Fatalf("no rule for %s", dir)
		return importRule{}
	}
	for _, tc := range []struct {
		dir, imp string
	}{
		{".", "github.com/parquet-go/parquet-go"},
		{".", module + "codec/cdc"},
		{".", module + "committer/delta"},
		{"cdc", module + "codec/parquetblock"},
		{"cdc", module + "committer"},
		{"cdc", "github.com/parquet-go/parquet-go"},
		{"parquetblock", module + "codec/cdc"},
		{"parquetblock", module + "committer/iceberg"},
		{"confluent", module + "codec/parquetblock"},
	} {
		src := "package x\n\nimport _ " + strconv.Quote(tc.imp) + "\n"
		bad, err := rule(tc.dir).violations(fset, "x.go", src)
		require.NoError(t, err)
		require.Equal(t, []string{tc.imp}, bad, "%s importing %s", tc.dir, tc.imp)
	}
	bad, err := rule("parquetblock").violations(fset, "x.go", "package x\n\nimport _ "+strconv.Quote(module+"codec")+"\n")
	require.NoError(t, err)
	require.Empty(t, bad, "block I/O may import the row model")
}
