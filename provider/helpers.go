package provider

import (
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/replicad/terraform-provider-redis/internal/client"
)

// clientFromProviderData returns the client that the provider's Configure
// made. It is nil, without a diagnostic, before the provider is configured
// (for example while Terraform validates a configuration).
func clientFromProviderData(data any, diags *diag.Diagnostics) *client.Client {
	if data == nil {
		return nil
	}
	c, ok := data.(*client.Client)
	if !ok {
		diags.AddError("Unexpected provider data",
			fmt.Sprintf("Expected a *client.Client, got %T. This is a bug in the provider: please report it.", data))
		return nil
	}
	return c
}
