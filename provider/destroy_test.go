package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
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

// TestDestroyingSchemasHaveNoValidators: while terraform destroys, no
// attribute of a resource, nested ones included, keeps a validator; the
// schemas are otherwise the same.
func TestDestroyingSchemasHaveNoValidators(t *testing.T) {
	ctx := t.Context()
	for _, pair := range [][2]resource.Resource{
		{&databaseResource{}, &databaseResource{destroying: true}},
		{&replicaOfResource{}, &replicaOfResource{destroying: true}},
		{&sourceURLPasswordResource{}, &sourceURLPasswordResource{destroying: true}},
	} {
		var normal, destroying resource.SchemaResponse
		pair[0].Schema(ctx, resource.SchemaRequest{}, &normal)
		pair[1].Schema(ctx, resource.SchemaRequest{}, &destroying)
		assert.Equal(t, len(normal.Schema.Attributes), len(destroying.Schema.Attributes))
		assert.Positive(t, countValidators(normal.Schema.Attributes), "%T has validators", pair[0])
		assert.Zero(t, countValidators(destroying.Schema.Attributes), "%T while destroying", pair[1])
	}
}

func countValidators(attrs map[string]rschema.Attribute) int {
	n := 0
	for _, a := range attrs {
		switch v := a.(type) {
		case rschema.StringAttribute:
			n += len(v.Validators)
		case rschema.BoolAttribute:
			n += len(v.Validators)
		case rschema.Int64Attribute:
			n += len(v.Validators)
		case rschema.ListAttribute:
			n += len(v.Validators)
		case rschema.MapAttribute:
			n += len(v.Validators)
		case rschema.SetAttribute:
			n += len(v.Validators)
		case rschema.ListNestedAttribute:
			n += len(v.Validators) + len(v.NestedObject.Validators) + countValidators(v.NestedObject.Attributes)
		case rschema.MapNestedAttribute:
			n += len(v.Validators) + len(v.NestedObject.Validators) + countValidators(v.NestedObject.Attributes)
		case rschema.SetNestedAttribute:
			n += len(v.Validators) + len(v.NestedObject.Validators) + countValidators(v.NestedObject.Attributes)
		}
	}
	return n
}
