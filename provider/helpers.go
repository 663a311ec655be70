package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/replicad/terraform-provider-redis/internal/tlspin"

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

// pemCertificate validates that a string is one PEM certificate.
func pemCertificate() validator.String { return pemCertificateValidator{} }

type pemCertificateValidator struct{}

func (pemCertificateValidator) Description(context.Context) string {
	return "must be a PEM certificate (-----BEGIN CERTIFICATE----- ...)"
}

func (v pemCertificateValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (v pemCertificateValidator) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := checkPEMCertificate(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid certificate", err.Error())
	}
}

// checkPEMCertificate reports why text is not one PEM certificate.
func checkPEMCertificate(text string) error {
	_, err := tlspin.ParseCertificate(text)
	return err
}

// durationString validates a Go duration such as "90s" or "5m", not negative.
func durationString() validator.String { return durationValidator{} }

type durationValidator struct{}

func (durationValidator) Description(context.Context) string {
	return `must be a duration such as "90s" or "5m", not negative`
}

func (v durationValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v durationValidator) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	d, err := time.ParseDuration(req.ConfigValue.ValueString())
	if err != nil || d < 0 {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid duration",
			fmt.Sprintf("%q is not a duration such as \"90s\" or \"5m\" (units: s, m, h), not negative.", req.ConfigValue.ValueString()))
	}
}
