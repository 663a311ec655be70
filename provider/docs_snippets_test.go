package provider

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAccDocs_snippetsValidate runs terraform validate on every terraform
// snippet of docs/ and the README that is not an example of examples/
// (TestAccExamples_validate covers those). A snippet shows a part of a
// configuration: what it refers to and does not declare (provider aliases,
// variables, resources of the example it continues) is declared beside it
// with the fewest arguments, so that what is checked is the snippet itself.
func TestAccDocs_snippetsValidate(t *testing.T) {
	cli := newTestAccCLI(t)
	examples := map[string]bool{}
	require.NoError(t, filepath.WalkDir("../examples", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".tf") {
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			examples[strings.TrimSpace(string(b))] = true
		}
		return err
	}))
	files := []string{"../README.md"}
	require.NoError(t, filepath.WalkDir("../docs", func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return err
	}))
	fence := regexp.MustCompile("(?s)```(?:terraform|hcl|tf)\n(.*?)```")
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for i, m := range fence.FindAllStringSubmatch(string(b), -1) {
			snippet := m[1]
			if examples[strings.TrimSpace(snippet)] {
				continue
			}
			checked++
			t.Run(fmt.Sprintf("%s#%d", strings.TrimPrefix(f, "../"), i+1), func(t *testing.T) {
				work := t.TempDir()
				require.NoError(t, os.WriteFile(filepath.Join(work, "snippet.tf"), []byte(snippet), 0o600))
				require.NoError(t, os.WriteFile(filepath.Join(work, "context.tf"), []byte(snippetContext(snippet)), 0o600))
				cli.dir = work
				out, code := cli.run("validate", "-no-color")
				assert.Equal(t, 0, code, "terraform validate of a snippet of %s:\n%s\n%s", f, snippet, tail(cli.all.String(), 3000))
				assert.Contains(t, out, "The configuration is valid")
			})
		}
	}
	assert.GreaterOrEqual(t, checked, 3, "the docs lost their snippets")
}

// snippetContext declares what snippet refers to without declaring it.
func snippetContext(snippet string) string {
	var b strings.Builder
	b.WriteString("terraform {\n  required_providers {\n    redis = { source = \"replicad/redis\" }\n  }\n}\n")
	declared := func(kind, typ, name string) bool {
		return regexp.MustCompile(kind + `\s+"` + typ + `"\s+"` + name + `"`).MatchString(snippet)
	}
	for _, alias := range []string{"us", "eu"} {
		if strings.Contains(snippet, "redis."+alias) && !regexp.MustCompile(`alias\s*=\s*"`+alias+`"`).MatchString(snippet) {
			fmt.Fprintf(&b, "provider \"redis\" {\n  alias = %q\n}\n", alias)
		}
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`\b(var|redis_database|redis_source_url_password)\.([a-z_][a-z0-9_]*)`).FindAllStringSubmatch(snippet, -1) {
		kind, name := m[1], m[2]
		if seen[kind+"."+name] {
			continue
		}
		seen[kind+"."+name] = true
		switch {
		case kind == "var" && !regexp.MustCompile(`variable\s+"`+name+`"`).MatchString(snippet):
			fmt.Fprintf(&b, "variable %q {\n  default = \"1\"\n}\n", name)
		case kind == "redis_database" && !declared("resource", kind, name):
			fmt.Fprintf(&b, "resource \"redis_database\" %q {\n  name        = %q\n  memory_size = 8388608\n}\n", name, name)
		case kind == "redis_source_url_password" && !declared("resource", kind, name):
			fmt.Fprintf(&b, "resource \"redis_source_url_password\" %q {\n  database_id = \"1\"\n}\n", name)
		}
	}
	return b.String()
}
