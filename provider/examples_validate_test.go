package provider

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAccExamples_validate runs terraform validate on every directory of
// examples/, as a user who copies one does: the snippets of the resources,
// data sources and ephemeral resources (which the docs show) declare no
// required_providers, so they get the block that examples/provider shows.
// Each must declare what it refers to.
func TestAccExamples_validate(t *testing.T) {
	cli := newTestAccCLI(t)
	dirs := map[string][]string{}
	require.NoError(t, filepath.WalkDir("../examples", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".tf") {
			dirs[filepath.Dir(p)] = append(dirs[filepath.Dir(p)], p)
		}
		return err
	}))
	require.GreaterOrEqual(t, len(dirs), 9, "examples/ lost directories")
	for dir, files := range dirs {
		t.Run(filepath.ToSlash(strings.TrimPrefix(dir, "../examples/")), func(t *testing.T) {
			work := t.TempDir()
			declared := false
			for _, f := range files {
				b, err := os.ReadFile(f)
				require.NoError(t, err)
				declared = declared || strings.Contains(string(b), "required_providers")
				require.NoError(t, os.WriteFile(filepath.Join(work, filepath.Base(f)), b, 0o600))
			}
			if !declared {
				require.NoError(t, os.WriteFile(filepath.Join(work, "terraform.tf"), []byte(`terraform {
  required_providers {
    redis = { source = "replicad/redis" }
  }
}
`), 0o600))
			}
			cli.dir = work
			out, code := cli.run("validate", "-no-color")
			assert.Equal(t, 0, code, "terraform validate of examples/%s:\n%s", dir, tail(cli.all.String(), 4000))
			assert.Contains(t, out, "The configuration is valid")
		})
	}
}
