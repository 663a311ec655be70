package provider

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAccDocsAreGenerated renders the documentation as `make generate` does
// (tfplugindocs, pinned in tools/, from the schemas, templates/ and
// examples/) into a scratch directory and compares it with docs/: a schema,
// template or example changed without `make generate` fails here rather
// than in the registry. The examples must be formatted (terraform fmt) too.
func TestAccDocsAreGenerated(t *testing.T) {
	testAccRequire(t)
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	// tfplugindocs writes under the provider directory only.
	scratch := ".docs-check-" + acctest.RandString(8)
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Join(root, scratch)) })

	gen := exec.Command("go", "run", "github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs", "generate",
		"--provider-dir", root, "--provider-name", "redis", "--rendered-website-dir", scratch)
	gen.Dir = filepath.Join(root, "tools")
	out, err := gen.CombinedOutput()
	require.NoError(t, err, "tfplugindocs generate:\n%s", out)

	files := func(dir string) map[string]string {
		m := map[string]string{}
		require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			m[rel] = string(b)
			return err
		}))
		return m
	}
	want, have := files(filepath.Join(root, scratch)), files(filepath.Join(root, "docs"))
	for name, content := range want {
		if assert.Contains(t, have, name, "docs/%s is missing: run make generate", name) {
			assert.Equal(t, content, have[name], "docs/%s differs from what make generate writes: run make generate", name)
		}
	}
	for name := range have {
		assert.Contains(t, want, name, "docs/%s is not generated any more: run make generate", name)
	}

	fmtCheck := exec.Command("terraform", "fmt", "-check", "-recursive", "-list=true", filepath.Join(root, "examples"))
	out, err = fmtCheck.CombinedOutput()
	assert.NoError(t, err, "examples/ is not formatted (terraform fmt, which make generate runs):\n%s", out)
}
