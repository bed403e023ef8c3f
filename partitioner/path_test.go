package partitioner

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParsePathTemplate(t *testing.T) {
	cases := []struct {
		tmpl      string
		wantError string
	}{
		{tmpl: "{db}/{schema}/{table}"},
		{tmpl: "{table}"},
		{tmpl: "cdc/{topic}/{table}"},
		{tmpl: "db={db}/t_{table}_v1"},
		{tmpl: "", wantError: "empty"},
		{tmpl: "{db}/{schema}", wantError: "must contain {table}"},
		{tmpl: "{db}//{table}", wantError: "empty segment"},
		{tmpl: "/{table}", wantError: "empty segment"},
		{tmpl: "{table}/", wantError: "empty segment"},
		{tmpl: "{tabel}", wantError: "unknown placeholder {tabel}"},
		{tmpl: "{table", wantError: "unmatched '{'"},
		{tmpl: "table}", wantError: "unmatched '}'"},
		{tmpl: "a b/{table}", wantError: "not allowed"},
		{tmpl: "{}/{table}", wantError: "unknown placeholder {}"},
		{tmpl: "../{table}", wantError: "starts with '.'"},
		{tmpl: ".hidden{db}/{table}", wantError: "starts with '.'"},
	}
	for _, tc := range cases {
		t.Run(tc.tmpl, func(t *testing.T) {
			tmpl, err := ParsePathTemplate(tc.tmpl)
			if tc.wantError != "" {
				require.ErrorContains(t, err, tc.wantError)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.tmpl, tmpl.String())
		})
	}
}

func TestPathTemplateRender(t *testing.T) {
	cases := []struct {
		name                     string
		tmpl                     string
		db, schema, table, topic string
		want                     string
		wantError                string
	}{
		{name: "postgres", tmpl: DefaultPathTemplate, db: "inventory", schema: "public", table: "users", want: "inventory/public/users"},
		{name: "mysql without schema", tmpl: DefaultPathTemplate, db: "inventory", table: "users", want: "inventory/users"},
		{name: "table only", tmpl: DefaultPathTemplate, table: "users", want: "users"},
		{name: "case kept", tmpl: DefaultPathTemplate, db: "Shop", schema: "dbo", table: "OrderItems", want: "Shop/dbo/OrderItems"},
		{name: "topic", tmpl: "cdc/{topic}/{table}", topic: "server1.public.users", table: "users", want: "cdc/server1.public.users/users"},
		{name: "mixed literal keeps segment", tmpl: "db={db}/{table}", table: "t", want: "db=/t"},
		{name: "empty table", tmpl: DefaultPathTemplate, db: "d", wantError: "empty table name"},
		{name: "slash in table", tmpl: DefaultPathTemplate, table: "a/b", wantError: `character '/' is not allowed`},
		{name: "dot dot", tmpl: DefaultPathTemplate, db: "..", table: "t", wantError: `segment ".." starts with '.'`},
		{name: "hidden", tmpl: DefaultPathTemplate, table: ".secret", wantError: "starts with '.'"},
		{name: "control char", tmpl: DefaultPathTemplate, table: "a\nb", wantError: "not allowed"},
		{name: "space", tmpl: DefaultPathTemplate, table: "order items", wantError: "not allowed"},
		{name: "unicode", tmpl: DefaultPathTemplate, table: "bücher", wantError: "not allowed"},
		{name: "too long segment", tmpl: DefaultPathTemplate, table: strings.Repeat("a", 256), wantError: "more than 255"},
		{name: "too long path", tmpl: DefaultPathTemplate, db: strings.Repeat("a", 200), schema: strings.Repeat("b", 200), table: strings.Repeat("c", 200), wantError: "more than 512"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := ParsePathTemplate(tc.tmpl)
			require.NoError(t, err)
			got, err := tmpl.Render(tc.db, tc.schema, tc.table, tc.topic)
			if tc.wantError != "" {
				require.ErrorContains(t, err, tc.wantError)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.NoError(t, ValidateTablePath(got))
		})
	}
}

func TestZeroTemplateIsAnError(t *testing.T) {
	_, err := PathTemplate{}.Render("d", "s", "t", "")
	require.Error(t, err)
	_, err = NewRouter(PathTemplate{}, nil)
	require.Error(t, err)
}

func TestRouter(t *testing.T) {
	tmpl, err := ParsePathTemplate(DefaultPathTemplate)
	require.NoError(t, err)
	r, err := NewRouter(tmpl, map[string]string{
		"users":                 "com/example/users",
		"billing.invoices":      "finance/invoices",
		"shop.billing.invoices": "shop/finance/invoices",
		"legacy.orders":         "legacy/orders_v1",
	})
	require.NoError(t, err)

	cases := []struct {
		name                     string
		db, schema, table, topic string
		want                     string
	}{
		{name: "table override", db: "app", schema: "public", table: "users", want: "com/example/users"},
		{name: "schema override", db: "other", schema: "billing", table: "invoices", want: "finance/invoices"},
		{name: "most specific wins", db: "shop", schema: "billing", table: "invoices", want: "shop/finance/invoices"},
		{name: "db.table override without schema", db: "legacy", table: "orders", want: "legacy/orders_v1"},
		{name: "template", db: "app", schema: "public", table: "orders", want: "app/public/orders"},
		{name: "schema key needs schema", db: "x", table: "invoices", want: "x/invoices"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Route(tc.db, tc.schema, tc.table, tc.topic)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}

	_, err = r.Route("app", "public", "", "t")
	require.ErrorContains(t, err, "empty table name")
}

func TestNewRouterRejects(t *testing.T) {
	tmpl, err := ParsePathTemplate("{table}")
	require.NoError(t, err)
	cases := []struct {
		name      string
		overrides map[string]string
		wantError string
	}{
		{name: "bad path", overrides: map[string]string{"users": "com/../users"}, wantError: `override for "users"`},
		{name: "empty path", overrides: map[string]string{"users": ""}, wantError: "empty table path"},
		{name: "empty key", overrides: map[string]string{"": "a"}, wantError: "empty table name"},
		{name: "same path", overrides: map[string]string{"a": "x/y", "b": "x/y"}, wantError: "overlap"},
		{name: "nested path", overrides: map[string]string{"a": "x/y", "b": "x/y/z"}, wantError: "overlap"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRouter(tmpl, tc.overrides)
			require.ErrorContains(t, err, tc.wantError)
		})
	}
	// Siblings sharing a name prefix are not nested.
	_, err = NewRouter(tmpl, map[string]string{"a": "x/y", "b": "x/yz"})
	require.NoError(t, err)
}
