package main

import (
	"go/parser"
	"go/token"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPackageDocNamesEverySubcommand keeps the command's doc comment from
// falling behind the subcommand table.
func TestPackageDocNamesEverySubcommand(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	require.NoError(t, err)
	require.NotNil(t, f.Doc)
	doc := f.Doc.Text()
	for name := range commands() {
		require.Contains(t, doc, "\tsink "+name+" ", "the package doc of cmd/sink does not name 'sink %s'", name)
	}
}
