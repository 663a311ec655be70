package provider

import (
	"context"
	"fmt"
	"math/big"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/attr/xattr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// wholeNumberType is an Int64 attribute type whose configuration may hold a
// number that is not a whole one (memory_size = 1048576.5): the framework's
// own Int64 type fails to read it with an error that blames the provider
// ("This is always an error in the provider"); this one reads it as an
// invalid value, which its validation reports as a configuration error.
type wholeNumberType struct {
	basetypes.Int64Type
}

var (
	_ basetypes.Int64Typable      = wholeNumberType{}
	_ xattr.ValidateableAttribute = wholeNumber{}
)

func (wholeNumberType) String() string { return "provider.wholeNumberType" }

func (wholeNumberType) Equal(o attr.Type) bool {
	_, ok := o.(wholeNumberType)
	return ok
}

func (wholeNumberType) ValueType(context.Context) attr.Value { return wholeNumber{} }

// Validate is left to wholeNumber.ValidateAttribute.
func (wholeNumberType) Validate(context.Context, tftypes.Value, path.Path) diag.Diagnostics {
	return nil
}

func (wholeNumberType) ValueFromInt64(_ context.Context, v basetypes.Int64Value) (basetypes.Int64Valuable, diag.Diagnostics) {
	return wholeNumber{Int64Value: v}, nil
}

func (wholeNumberType) ValueFromTerraform(_ context.Context, in tftypes.Value) (attr.Value, error) {
	switch {
	case !in.IsKnown():
		return wholeNumber{Int64Value: basetypes.NewInt64Unknown()}, nil
	case in.IsNull():
		return wholeNumber{Int64Value: basetypes.NewInt64Null()}, nil
	}
	var f *big.Float
	if err := in.As(&f); err != nil {
		return nil, err
	}
	i, accuracy := f.Int64()
	if !f.IsInt() || accuracy != big.Exact {
		return wholeNumber{Int64Value: basetypes.NewInt64Unknown(), invalid: f.Text('g', -1)}, nil
	}
	return wholeNumber{Int64Value: basetypes.NewInt64Value(i)}, nil
}

// wholeNumber is a value of wholeNumberType. invalid holds a configured
// number that is not a whole 64-bit one (the value is then unknown).
type wholeNumber struct {
	basetypes.Int64Value
	invalid string
}

func newWholeNumber(n int64) wholeNumber { return wholeNumber{Int64Value: basetypes.NewInt64Value(n)} }

func (wholeNumber) Type(context.Context) attr.Type { return wholeNumberType{} }

func (v wholeNumber) Equal(o attr.Value) bool {
	w, ok := o.(wholeNumber)
	return ok && v.invalid == w.invalid && v.Int64Value.Equal(w.Int64Value)
}

func (v wholeNumber) ValidateAttribute(_ context.Context, req xattr.ValidateAttributeRequest, resp *xattr.ValidateAttributeResponse) {
	if v.invalid != "" {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid number",
			fmt.Sprintf("%s must be a whole number, not %s.", req.Path, v.invalid))
	}
}
