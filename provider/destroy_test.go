package provider

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDestroyCommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"terraform", "destroy"}, true},
		{[]string{"/usr/local/bin/terraform", "-chdir=/x", "destroy", "-auto-approve"}, true},
		{[]string{"terraform", "plan", "-destroy"}, true},
		{[]string{"terraform", "apply", "-no-color", "--destroy"}, true},
		{[]string{"terraform", "apply", "-destroy=true"}, true},
		{[]string{"tofu", "destroy"}, true},
		{[]string{"terraform", "apply", "-destroy=false"}, false},
		{[]string{"terraform", "apply", "-auto-approve"}, false},
		{[]string{"terraform", "plan", "-var", "x=destroy"}, false},
		{[]string{"terraform", "-chdir=destroy", "plan"}, false},
		{[]string{"terraform", "import", "a.b", "destroy"}, false},
		{[]string{"provider.test", "destroy"}, false},
		{[]string{"terraform"}, false},
		{nil, false},
	} {
		assert.Equal(t, c.want, destroyCommand(c.args), "%q", c.args)
	}
}
